"""Layer 3: quality evidence per landmark and its calibration (numpy only).
"""
