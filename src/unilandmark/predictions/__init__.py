"""Layer 3: the prediction table (one schema, one reader, one writer).
"""
