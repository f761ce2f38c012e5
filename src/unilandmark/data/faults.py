"""Fault collection: every bad record of a dataset is reported together."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError


@dataclass(frozen=True)
class Fault:
    """One problem with one file or record: ``file: record: message``."""

    file: str
    record: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f": record {self.record}" if self.record else "")
        return f"{where}: {self.message}"


class DatasetError(InputError):
    """A dataset with faults; ``faults`` lists all of them."""

    def __init__(self, name: str, faults: list[Fault]):
        self.name = name
        self.faults = list(faults)
        lines = "\n".join(f"  - {f}" for f in self.faults[:200])
        more = f"\n  ... and {len(self.faults) - 200} more" if len(self.faults) > 200 else ""
        super().__init__(f"{name}: {len(self.faults)} fault(s):\n{lines}{more}")


class FaultLog:
    """Collects faults while parsing; ``raise_if_any`` raises one DatasetError for all."""

    def __init__(self, name: str):
        self.name = name
        self.faults: list[Fault] = []

    def add(self, file, record: str, message: str) -> None:
        self.faults.append(Fault(str(file), str(record), message))

    def extend(self, faults: list[Fault]) -> None:
        self.faults.extend(faults)

    def raise_if_any(self) -> None:
        if self.faults:
            raise DatasetError(self.name, self.faults)
