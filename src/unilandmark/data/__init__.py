"""Layer 2: datasets without training: adapters (named datasets, CSV tables), annotation
parsing, spreadsheets, faults, validation, size advice, synthetic phantoms."""
