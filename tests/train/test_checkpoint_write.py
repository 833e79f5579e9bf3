"""A checkpoint save that fails (disk full, read-only folder) is one line naming the folder and the cause;
the partial checkpoint.tmp is removed and the previous checkpoint kept. On the command line any such
write error is one line and exit status 1."""

import errno

import pytest
import torch

from fmlm import cli
from fmlm.cli import run_commands
from fmlm.train import checkpoint as ckpt
from tests.experiment.test_stages import save, teacher_model


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_full(*args, **kwargs):  # what torch.save raises when the disk fills under it
    raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 640 vs 546\nmore lines")


@pytest.mark.parametrize("where,failure", [("save_file", _enospc), ("torch", _torch_full)])
def test_a_failed_save_keeps_the_old_checkpoint_and_removes_the_partial_one(tmp_path, monkeypatch, where, failure):
    folder = save(tmp_path / "checkpoint", "teacher", teacher_model())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    meta = ckpt.read_meta(folder)
    if where == "torch":
        monkeypatch.setattr(ckpt.torch, "save", failure)
    else:
        monkeypatch.setattr(ckpt, "save_file", failure)
    model = teacher_model()
    with pytest.raises(OSError) as err:
        ckpt.save_checkpoint(folder, model, model, [torch.optim.SGD(model.parameters(), lr=0.1)], meta)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert ("No space left on device" if where == "save_file" else "unexpected pos") in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no checkpoint.tmp left
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_write_error_on_the_command_line_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(args):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "run" / "experiment.json"))

    monkeypatch.setattr(run_commands, "cmd_prepare", read_only)
    assert cli.main(["prepare"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'run' / 'experiment.json'}: Read-only file system\n"
