"""Layer 4: scoring under named protocols, reports and figures, quality reports. Never
imports ``training``.
"""
