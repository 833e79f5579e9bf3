"""File helpers shared by the whole project (torch-free, the bottom layer): strict JSON / JSON-lines
reading, atomic writes, and the one-line form of an exception.

Every reader raises a one-line ``ValueError`` that names the file (and line) it could not read;
every writer goes through a temporary file in the target folder and ``os.replace``, so an interrupted
write never leaves half a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


def _read_text(path: Path) -> str:
    """The file's UTF-8 text; ``ValueError`` naming ``path`` if it cannot be read or decoded."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from None


def read_json(path: Path) -> Any:
    """Parse one JSON document; ``ValueError`` naming ``path`` if it is not valid JSON."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None


def read_json_dict(path: Path) -> dict[str, Any]:
    """Parse a JSON file that must hold an object (dict)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_jsonl(path: Path, *, strict: bool = True,
               drop_cut_last: bool = False) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """Parse a JSON-lines file into ``[(line_number, record), ...]`` and the bad line numbers.

    Blank lines are skipped. With ``strict`` a line that is not a JSON object
    raises ``ValueError`` naming ``path:line``; without it the line number is
    returned in the second list so the caller can report it (never silently).
    ``drop_cut_last``: a last line without its newline that does not parse (a write cut by a crash)
    is never a refusal: it is left out and its number returned in the second list, even when strict.
    """
    text = _read_text(path)
    lines = text.splitlines()
    cut_last = len(lines) if drop_cut_last and text and not text.endswith("\n") else None
    records: list[tuple[int, dict[str, Any]]] = []
    bad: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == cut_last:
                bad.append(number)
                continue
            if strict:
                raise ValueError(f"{path}:{number}: invalid JSON ({err.msg})") from None
            bad.append(number)
            continue
        if not isinstance(record, dict):
            if strict:
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            bad.append(number)
            continue
        records.append((number, record))
    return records, bad


_FILE_MODE = 0o666
"""Mode of a new file before the umask, as ``open(..., "w")`` would create it."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_name)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, data: Any, *, sort_keys: bool = True) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line to ``path`` atomically."""
    return write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def drop_cut_last_line(path: Path) -> bool:
    """Remove a last line cut short by a crash (no final newline), with a note on stderr; True if one was."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    keep = data[: data.rfind(b"\n") + 1]
    _atomic(path, lambda tmp: Path(tmp).write_bytes(keep))
    print(f"note: {path}: dropped a last line cut short by an interrupted write ({len(data) - len(keep)} bytes)",
          file=sys.stderr)
    return True


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one complete JSON line to ``path`` (one write call: a crash leaves at most a cut last line,
    which the next append drops first)."""
    drop_cut_last_line(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_folder_atomic(folder: Path, fill: Callable[[Path], None], *, replace: bool = False,
                        done_file: str | None = None) -> Path:
    """Fill a temporary sibling of ``folder`` with ``fill(tmp)``, then rename it onto ``folder``.

    ``replace``: an existing ``folder`` is replaced. Otherwise, when another process finished ``folder``
    first (it holds ``done_file``), that copy is kept and the temporary one dropped."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; these are ordinary folders
        fill(tmp)
        if replace and folder.exists():
            shutil.rmtree(folder)
        try:
            os.rename(tmp, folder)
        except OSError:
            if done_file is None or not (folder / done_file).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def save_figure_atomic(fig: Any, path: Path) -> Path:
    """Save a matplotlib ``Figure`` as PNG to ``path`` atomically."""
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


PICKLE_PROTOCOL_WARNING = r"Detected pickle protocol"
"""The start of torch's UserWarning about a plain pickle's protocol (two lines printed before any refusal);
callers of ``torch.load(weights_only=True)`` silence it, their one-line error says what matters."""


def describe_refused_pickle(err: BaseException, path: Path) -> str:
    """What ``torch.load(weights_only=True)`` refused in ``path``, in one line (never torch's advice to
    disable the check): the global it pickles, found in the error or by listing the file's opcodes."""
    text = str(err)
    match = re.search(r"GLOBAL ([\w.]+)", text)
    name = match.group(1) if match else _first_unsafe_global(path)
    if name:
        return f"it pickles the global {name}, which is not a tensor or plain container"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return f"it holds something other than tensors and plain containers ({detail.group(1) if detail else 'unknown'})"


def _first_unsafe_global(path: Path) -> str | None:
    """The first global a plain (non-zip) pickle file names outside torch's own, read with pickletools
    (which only lists opcodes and executes nothing); None when there is none or the file is not a pickle."""
    import pickletools
    import zipfile

    if zipfile.is_zipfile(path):
        return None
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name in ("GLOBAL", "INST"):
                    name = str(arg).replace(" ", ".")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = f"{strings[-2]}.{strings[-1]}"
                else:
                    if isinstance(arg, str):
                        strings.append(arg)
                    continue
                if not name.startswith(("torch.", "collections.OrderedDict")):
                    return name
    except Exception:  # noqa: BLE001 - a broken stream simply names no global
        return None
    return None
