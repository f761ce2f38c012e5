"""``python -m unilandmark`` (also what torchrun runs with ``-m unilandmark``)."""

from .cli import app

app()
