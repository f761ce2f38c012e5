"""Layer 4: prediction on new images: the ``Detector``, input reading and prefetch,
orientation, the shape check, patch refinement, results. Never imports ``training``.
"""
