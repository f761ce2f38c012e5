"""Dataset adapters: named datasets (ISBI 2015, hand, chest, labelme, phantoms) and CSV
tables, each read into a ``DatasetSpec``.
"""
