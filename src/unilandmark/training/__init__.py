"""Layer 5: the one training loop (``fit``), the experiment config, run folders, speed
settings, sampling, augmentation, the training dataset and the stages.
"""
