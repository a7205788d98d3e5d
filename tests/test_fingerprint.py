from pathlib import Path

from alexnet_lightning.data.fingerprint import fingerprint


def test_fingerprint_changes_with_files_and_settings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    key = fingerprint([a, b], 224)
    assert key == fingerprint([a, b], 224)
    assert key != fingerprint([a, b], 256)
    assert key != fingerprint([a], 224)
    b.write_bytes(b"22")
    assert key != fingerprint([a, b], 224)
