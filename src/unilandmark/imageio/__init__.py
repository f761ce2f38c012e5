"""Layer 1: reading images with their geometry (spacing), format sniffing, DICOM details,
the anti-aliased resize.
"""
