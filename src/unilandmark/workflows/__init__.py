"""Layer 6: multi-step jobs built on the layers below: adapt, calibrate, demo.
"""
