"""The manifest contract and `check_manifest`: every problem reported by line."""

from __future__ import annotations

import json
import shutil

import pytest

from avkit.data.check import check_manifest
from avkit.data.manifest import Record, parse_record, read_manifest, write_manifest
from avkit.errors import ManifestError


def line(**kw) -> str:
    base = {"id": "a1", "audio": "audio/a1.wav", "image": "images/a1.png"}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


def test_parse_minimal_and_full():
    rec = parse_record(line(), "m.jsonl", 1)
    assert rec.paths == {"audio": "audio/a1.wav", "image": "images/a1.png"}
    assert rec.label is None and rec.split is None and rec.boxes is None
    rec = parse_record(line(label=7, split="test", boxes=[[1, 2, 3, 4]], voice="en+m1"), "m.jsonl", 3)
    assert rec.label == "7" and rec.split == "test" and rec.boxes == ((1.0, 2.0, 3.0, 4.0),)
    assert rec.extra == {"voice": "en+m1"} and rec.line == 3
    assert parse_record(line(label=None, split=None), "m.jsonl", 1).label is None


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"id": "a1", ', "m.jsonl:4: not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (line(id=...), "missing field 'id'"),
        (line(audio=...), "missing field 'audio'"),
        (line(image=""), "missing field 'image'"),
        (line(label=[1]), "'label' must be a string"),
        (line(split=3), "'split' must be a string"),
        (line(boxes=[[1, 2, 3]]), "box 0 must be 4 numbers"),
        (line(boxes=[[5, 2, 3, 4]]), "x0 < x1"),
        (line(boxes="x"), "'boxes' must be a list"),
    ],
)
def test_bad_lines_name_file_line_and_expectation(text, message):
    with pytest.raises(ManifestError, match=message) as info:
        parse_record(text, "m.jsonl", 4)
    assert str(info.value).startswith("m.jsonl:4: ")


def test_read_manifest_refuses_duplicates_and_empty(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(line() + "\n\n" + line() + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:3: duplicate id 'a1' \(first on line 1\)"):
        read_manifest(path)
    path.write_text("\n")
    with pytest.raises(ManifestError, match="no records"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "none.jsonl")


def test_write_read_round_trip(tmp_path):
    recs = [Record("x", {"audio": "a.wav", "image": "i.png"}, "3", "train", ((0, 0, 5, 5),), {"k": 1})]
    write_manifest(tmp_path / "m.jsonl", recs)
    back = read_manifest(tmp_path / "m.jsonl")
    assert back.records[0].to_json() == recs[0].to_json()
    assert back.resolve(back.records[0], "audio") == tmp_path / "a.wav"


def test_check_passes_on_a_built_dataset(small_digits):
    report = check_manifest(small_digits / "manifest.jsonl")
    assert report.ok, report.summary()
    assert report.records == 100
    assert report.splits == {"train": 60, "val": 20, "test": 20}
    assert report.labels["test"]["7"] == 2


def test_check_reports_every_problem_by_line(small_digits, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(small_digits, root)
    lines = (root / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    (root / first["audio"]).write_bytes(b"not audio")           # line 1: unreadable audio
    (root / json.loads(lines[1])["image"]).unlink()              # line 2: missing image
    lines[2] = lines[2][:-5]                                      # line 3: truncated JSON
    lines[3] = json.dumps({k: v for k, v in json.loads(lines[3]).items() if k != "audio"})  # line 4: no audio
    lines[4] = json.dumps({**json.loads(lines[4]), "id": first["id"]})  # line 5: duplicate id
    lines[5] = json.dumps({**json.loads(lines[5]), "boxes": [[0, 0, 40, 10]]})  # line 6: box outside 32x32
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    report = check_manifest(root / "manifest.jsonl")
    found = {p.line: p.message for p in report.problems}
    assert not report.ok
    assert "audio file" in found[1] and "cannot be decoded as audio" in found[1]
    assert "image file" in found[2] and "does not exist" in found[2]
    assert "not valid JSON" in found[3]
    assert "missing field 'audio'" in found[4]
    assert "duplicate id" in found[5]
    assert "lies outside the 32x32 image" in found[6]
    assert report.records == 100 - 6


def test_no_decode_still_reports_an_undecodable_image_with_boxes(small_digits, tmp_path):
    root = tmp_path / "nodecode"
    shutil.copytree(small_digits, root)
    lines = (root / "manifest.jsonl").read_text().splitlines()
    first = {**json.loads(lines[0]), "boxes": [[0, 0, 5, 5]]}
    (root / first["image"]).write_bytes(b"not an image")
    lines[0] = json.dumps(first)
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    report = check_manifest(root / "manifest.jsonl", decode=False)
    assert [p.line for p in report.problems] == [1]
    assert "cannot be decoded as an image" in report.problems[0].message
    assert report.records == 99


@pytest.mark.parametrize("rid, why", [("../../x/images/5-en-m3-t0", "holds a path separator"),
                                      ("/etc/passwd", "holds a path separator"), ("a\\b", "holds a path separator"),
                                      ("..", "names a folder"), ("a\nb", "holds a control character")])  # fmt: skip
def test_ids_that_are_not_safe_file_names_are_refused_by_line(tmp_path, rid, why):
    line = {"id": rid, "audio": "a.wav", "image": "b.png"}
    with pytest.raises(ManifestError, match=rf"m.jsonl:3: id .* is not a safe name \(it {why}\)"):
        parse_record(json.dumps(line), tmp_path / "m.jsonl", 3)
    good = json.dumps({"id": "7-en-m3-t0.v2", "audio": "a.wav", "image": "b.png"})
    (tmp_path / "m.jsonl").write_text(good + "\n" + json.dumps(line) + "\n")
    report = check_manifest(tmp_path / "m.jsonl", decode=False)
    assert [p.line for p in report.problems if "safe name" in p.message] == [2]


def test_a_byte_order_mark_is_accepted_and_a_non_string_id_is_named(tmp_path):
    line = {"id": "a1", "audio": "a.wav", "image": "b.png"}
    (tmp_path / "m.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(line).encode() + b"\n")
    assert [r.id for r in read_manifest(tmp_path / "m.jsonl")] == ["a1"]
    with pytest.raises(ManifestError, match=r"m.jsonl:4: 'id' must be a non-empty string, got 7"):
        parse_record(json.dumps({**line, "id": 7}), tmp_path / "m.jsonl", 4)


def test_an_id_too_long_for_a_file_name_is_refused(tmp_path):
    from avkit.data.manifest import MAX_ID_BYTES, unsafe_id

    assert unsafe_id("x" * MAX_ID_BYTES) is None
    assert "241 bytes long; file names allow 240" in unsafe_id("x" * (MAX_ID_BYTES + 1))
    assert unsafe_id("é" * 121) is not None  # counted in bytes, not characters


def test_shards_partition_a_split_and_an_empty_share_is_refused(small_digits, trained_run, tmp_path, monkeypatch, capsys):
    from avkit.cli import main
    from avkit.data.manifest import read_manifest

    m = read_manifest(small_digits / "manifest.jsonl")
    test_ids = [r.id for r in m.split("test")]
    shards = [m.shard(i, 3, "test") for i in range(3)]
    assert sorted(r.id for s in shards for r in s.records) == sorted(test_ids)
    assert all(s.root == m.root for s in shards) and len({r.id for s in shards for r in s.records}) == len(test_ids)
    monkeypatch.setenv("RANK", str(len(test_ids)))  # more processes than records: the last has none
    monkeypatch.setenv("WORLD_SIZE", str(len(test_ids) + 1))
    assert main(["embed", "--checkpoint", str(trained_run), "--manifest", str(small_digits / "manifest.jsonl"),
                 "--modality", "image", "--split", "test", "--out", str(tmp_path / "e.safetensors")]) == 2  # fmt: skip
    assert "has no records of split 'test' to embed; use fewer processes" in capsys.readouterr().err
