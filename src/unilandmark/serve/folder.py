"""The folder under review: which images it holds, and nothing outside it.

Images are the regular files directly inside the folder whose suffix names a supported
format (:func:`unilandmark.io.is_image_file`); hidden files (``.name``) are skipped. A
name from a request is only ever looked up in that listing, and the file it names must
resolve (symbolic links followed) inside the folder, so ``..``, encoded separators,
absolute paths and links pointing outside are all refused the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..core.naming import file_stem
from ..imageio.read import SUFFIXES, ImageReadError, image_suffix, is_image_file, read_image


class UnknownImage(LookupError):
    """A requested name is not an image of the folder (or resolves outside it)."""


class UploadRejected(ValueError):
    """An upload that is not stored; the message says why, for the page."""


class ImageFolder:
    """The images directly inside ``root``; every lookup is confined to ``root``."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder")
        self.root = root.resolve()

    def accepts(self, name: str) -> bool:
        """Whether a file of this name is listed (by its suffix, or its content)."""
        return is_image_file(name)

    def names(self) -> list[str]:
        """File names of the folder's images, sorted; read afresh on every call."""
        out = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") or not self.accepts(entry.name):
                continue
            path = Path(entry.path)
            if path.is_file() and self._inside(path):
                out.append(entry.name)
        return sorted(out)

    def path(self, name: str) -> Path:
        """The file of image ``name``; :class:`UnknownImage` unless it is listed and inside."""
        if (not name or "/" in name or "\\" in name or "\0" in name or name in (".", "..")
                or name.startswith(".") or not self.accepts(name)):
            raise UnknownImage(f"{name!r}: not an image of this folder")
        path = self.root / name
        if not (path.is_file() and self._inside(path)):
            raise UnknownImage(f"{name!r}: not an image of this folder")
        return path

    def shared_stem(self, name: str) -> list[str]:
        """Other images whose record id (stem) equals that of ``name``."""
        stem = file_stem(name)
        return [n for n in self.names() if n != name and file_stem(n) == stem]

    def store_upload(self, filename: str, data: bytes) -> str:
        """Store an uploaded image in the folder and return its file name.

        The name is reduced to its last component; a name already taken gets ``-1``,
        ``-2``, ... before the suffix, so an upload never replaces a file. The bytes must
        read as an image of a supported format (checked before the file appears under
        its final name); :class:`UploadRejected` says what is wrong otherwise.
        """
        base = Path(str(filename).replace("\\", "/")).name.strip()
        if not base or base.startswith(".") or "\0" in base:
            raise UploadRejected(f"{filename!r}: not a usable file name")
        suffix = image_suffix(base)
        if not is_image_file(base):
            raise UploadRejected(
                f"{base}: not an image this app can read (suffix {suffix or 'none'!r}); "
                f"supported: {', '.join(sorted(SUFFIXES))}")
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                read_image(tmp)
            except ImageReadError as err:
                fault = str(err).split(": ", 1)[-1]
                raise UploadRejected(f"{base}: not a readable image ({fault})") from None
            os.chmod(tmp, 0o644)
            return self._link_free_name(tmp, base, suffix)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _link_free_name(self, tmp: str, base: str, suffix: str) -> str:
        stem = base[: -len(suffix)]
        for i in range(1000):
            name = base if i == 0 else f"{stem}-{i}{suffix}"
            target = self.root / name
            try:
                os.link(tmp, target)  # fails if the name exists: never clobbers
                return name
            except FileExistsError:
                continue
            except OSError:  # no hard links here: reserve the name, then replace it
                try:
                    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    continue
                os.replace(tmp, target)
                return name
        raise UploadRejected(f"{base}: too many files with this name already")

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):  # a broken or looping link
            return False

