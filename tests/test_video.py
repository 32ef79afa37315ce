"""Video input: seeking PyAV readers, manifest video lines, ``data check`` and ``data from-videos``.

Every video here is made by the test with PyAV: numbered grey frames (frame i has value 20·i) and
a 440 Hz tone, plus files with no sound track, a variable frame rate, and truncations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avkit.data.check import check_manifest
from avkit.data.manifest import read_manifest
from avkit.data.videos import VideosConfig, build_from_videos, hashed_split, line_times
from avkit.errors import ManifestError, MediaError
from avkit.modalities import get_modality
from avkit.video import probe_video, read_audio_at, read_frame, save_video

SR = 16000


def frames(n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    return [np.full((*size, 3), 20 * i % 240, np.uint8) for i in range(n)]


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def level(frame: torch.Tensor) -> float:
    """Which numbered frame this is (frame i is grey 20·i)."""
    return float(frame.mean()) * 255 / 20


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 5 fps (frames 0-9) with a 2 s tone."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    save_video(path, frames(10), 5, tone(2.0), SR)
    return path


def test_probe_reports_streams_duration_and_size(clip, tmp_path):
    info = probe_video(clip)
    assert info.has_video and info.has_audio and info.sample_rate == SR
    assert (info.width, info.height) == (64, 48) and info.fps == pytest.approx(5.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    silent = tmp_path / "silent.mp4"
    save_video(silent, frames(4), 5)
    assert not probe_video(silent).has_audio


@pytest.mark.parametrize(("t", "expected"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.39, 1), (1.0, 5), (1.95, 9)])
def test_the_frame_at_t_is_the_one_on_screen_at_t(clip, t, expected):
    frame = read_frame(clip, t)
    assert frame.shape == (3, 48, 64) and frame.dtype == torch.float32
    assert level(frame) == pytest.approx(expected, abs=0.1)


def test_variable_frame_rate_frames_are_found_by_their_own_times(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.1, 0.15, 0.5, 0.9, 1.0, 1.05, 1.5, 1.6, 1.9]
    save_video(path, frames(10), 5, times=times)
    for t, expected in [(0.12, 1), (0.16, 2), (0.6, 3), (1.02, 5), (1.55, 7), (1.92, 9)]:
        assert level(read_frame(path, t)) == pytest.approx(expected, abs=0.1), t


def test_a_frame_held_for_seconds_is_not_taken_for_truncation(tmp_path):
    path = tmp_path / "sparse.mp4"  # a new frame only when the picture changes: at 0, 3 and 6 s
    save_video(path, frames(3), 1, times=[0.0, 3.0, 6.0])
    assert level(read_frame(path, 5.0)) == pytest.approx(1, abs=0.1)
    assert level(read_frame(path, 6.0)) == pytest.approx(2, abs=0.1)


def test_sound_shorter_than_the_picture(tmp_path, caplog):
    path = tmp_path / "short-sound.mp4"  # 4 s of picture, 1 s of sound
    save_video(path, frames(20), 5, tone(1.0), SR)
    info = probe_video(path)
    assert info.audio_duration == pytest.approx(1.0, abs=0.1) and info.usable_duration == pytest.approx(1.0, abs=0.1)
    with pytest.raises(MediaError, match="past the end of its sound stream"):
        read_audio_at(path, 3.0, 1.0, SR)
    assert read_audio_at(path, 0.9, 1.0, SR).shape == (SR,)  # the window moved inside the sound
    report = build_from_videos_of(tmp_path, path)
    assert [r.t for r in read_manifest(report.manifest)] == [0.5]  # times the sound can serve


def build_from_videos_of(tmp_path: Path, video: Path):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / video.name).write_bytes(video.read_bytes())
    return build_from_videos(folder, tmp_path / "one-out", VideosConfig(every=1.0, label_from="none"))


def test_audio_around_t_has_the_clip_length_and_the_tone(clip):
    wav = read_audio_at(clip, 1.0, 1.0, SR)
    assert wav.shape == (SR,) and wav.dtype == torch.float32
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 Hz bins
    assert float(wav.abs().max()) == pytest.approx(0.5, abs=0.05)
    for t in (0.0, 2.0):  # near either end the window moves inside the file: still full, still the tone
        edge = read_audio_at(clip, t, 1.0, SR)
        assert edge.shape == (SR,) and float(edge[:1000].abs().max()) > 0.3 and float(edge[-1000:].abs().max()) > 0.3
    assert read_audio_at(clip, 1.0, 0.5, 8000).shape == (4000,)  # resampled by FFmpeg
    assert read_audio_at(clip, 1.0, 3.0, SR).shape == (3 * SR,)  # longer than the file: padded with silence


class _CountingContainer:
    """A PyAV container that counts the frames its ``decode`` yields."""

    def __init__(self, container):
        self._container, self.decoded = container, 0

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        self._container.__enter__()
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame


def test_readers_seek_near_t_instead_of_decoding_from_the_start(tmp_path, monkeypatch):
    import avkit.video.io as video_io

    path = tmp_path / "long.mp4"
    save_video(path, frames(600), 10, tone(60.0), SR)  # 60 s: 600 pictures, about 940 AAC frames
    opened = []
    real_open = video_io._open
    monkeypatch.setattr(video_io, "_open", lambda p: opened.append(_CountingContainer(real_open(p))) or opened[-1])
    assert level(read_frame(path, 55.0)) == pytest.approx(10, abs=0.1)  # frame 550: grey 20·550 mod 240 = 200
    assert opened[-1].decoded < 100  # from the start it decodes about 550
    clip = read_audio_at(path, 55.0, 1.0, SR)
    assert clip.shape == (SR,) and float(clip.abs().max()) > 0.3
    assert opened[-1].decoded < 60  # from the start: about 875


def test_bad_videos_get_errors_naming_the_file(clip, tmp_path):
    silent = tmp_path / "silent.mp4"
    save_video(silent, frames(4), 5)
    with pytest.raises(MediaError, match=r"silent\.mp4: has no audio stream"):
        read_audio_at(silent, 0.2, 1.0, SR)
    with pytest.raises(MediaError, match=r"clip\.mp4: time t=5 s is past the end of its picture stream"):
        read_frame(clip, 5.0)
    with pytest.raises(MediaError, match="t=-1 must be a finite number"):
        read_frame(clip, -1.0)
    cut = tmp_path / "cut.mp4"  # the MP4 index is at the end: half a file cannot be opened
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    for read in (probe_video, lambda p: read_frame(p, 1.0), lambda p: read_audio_at(p, 1.0, 1.0, SR)):
        with pytest.raises(MediaError, match=r"cut\.mp4: cannot be decoded as a video.*damaged or truncated"):
            read(cut)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(MediaError, match=r"notes\.mp4: cannot be decoded as a video: expected a video file"):
        probe_video(text)


def test_a_truncated_streamable_video_is_read_up_to_its_end_and_no_further(tmp_path):
    full = tmp_path / "full.mkv"  # Matroska streams: a cut file opens and decodes up to the cut
    save_video(full, frames(40, (64, 64)), 10, tone(4.0), SR)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    assert level(read_frame(cut, 0.05)) == pytest.approx(0, abs=0.1)
    with pytest.raises(MediaError, match=r"cut\.mkv: .*(truncated|past the end)"):
        read_frame(cut, 3.9)


def video_manifest(folder: Path, lines: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_manifest_video_lines_are_read_at_t_by_every_modality(clip, tmp_path):
    man = video_manifest(tmp_path, [{"id": "a", "video": str(clip), "t": 1.0, "label": "5"}])
    manifest = read_manifest(man)
    rec = manifest.records[0]
    assert rec.video == str(clip) and rec.t == 1.0 and manifest.resolve(rec, "audio") == clip
    assert rec.to_json() == {"id": "a", "video": str(clip), "t": 1.0, "label": "5"}
    audio = get_modality("audio").make_pipeline({"seconds": 0.5})
    image = get_modality("image").make_pipeline({"size": 32})
    assert manifest.load(rec, audio).shape == (SR // 2,)
    img = manifest.load(rec, image)
    assert level(img) == pytest.approx(5, abs=0.1)
    assert image(img)[0].shape == (3, 32, 32)


@pytest.mark.parametrize(("line", "message"), [
    ({"id": "a", "video": "x.mp4"}, "a video line needs 't'"),
    ({"id": "a", "video": "x.mp4", "t": -1}, "a video line needs 't'"),
    ({"id": "a", "video": "x.mp4", "t": True}, "a video line needs 't'"),
    ({"id": "a", "video": "x.mp4", "t": 1, "audio": "a.wav"}, "missing field 'image'"),
    ({"id": "a", "video": 3, "t": 1}, "'video' must be a path"),
])  # fmt: skip
def test_malformed_video_lines_are_refused_with_the_line_named(tmp_path, line, message):
    man = video_manifest(tmp_path, [line])
    with pytest.raises(ManifestError, match=rf"manifest\.jsonl:1: .*{message}"):
        read_manifest(man)


def test_video_and_t_beside_files_are_metadata(tmp_path):
    man = video_manifest(tmp_path, [{"id": "a", "audio": "a.wav", "image": "a.png", "video": "yt:abc", "t": 12}])
    rec = read_manifest(man).records[0]
    assert rec.video is None and rec.extra == {"video": "yt:abc", "t": 12} and rec.paths["audio"] == "a.wav"


def test_data_check_opens_each_video_and_checks_streams_and_t(clip, tmp_path):
    silent = tmp_path / "silent.mp4"
    save_video(silent, frames(4), 5)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:3000])
    man = video_manifest(tmp_path, [
        {"id": "ok", "video": str(clip), "t": 1.0},
        {"id": "late", "video": str(clip), "t": 9.0},
        {"id": "mute", "video": "silent.mp4", "t": 0.2},
        {"id": "cut", "video": "cut.mp4", "t": 0.2},
        {"id": "gone", "video": "gone.mp4", "t": 0.2},
    ])  # fmt: skip
    report = check_manifest(man)
    problems = {p.id: p.message for p in report.problems}
    assert report.records == 1 and set(problems) == {"late", "mute", "cut", "gone"}
    assert "t=9 s is past the end of the video (2.0" in problems["late"]
    assert "silent.mp4': has no audio stream (needed for audio)" in problems["mute"]
    assert "cut.mp4': cannot be decoded as a video" in problems["cut"]
    assert "gone.mp4': file does not exist" in problems["gone"]


def test_from_videos_writes_lines_with_labels_splits_and_reports_bad_videos(clip, tmp_path):
    src = tmp_path / "clips"
    for label in ("dog", "cat"):
        (src / label).mkdir(parents=True)
        (src / label / f"{label}.mp4").write_bytes(clip.read_bytes())
    save_video(src / "dog" / "mute.mp4", frames(4), 5)
    (src / "cat" / "broken.mp4").write_bytes(b"\0" * 100)
    (src / "cat" / ".hidden.mp4").write_bytes(clip.read_bytes())
    report = build_from_videos(src, tmp_path / "out", VideosConfig(every=0.5))
    assert {s["id"] for s in report.skipped} == {"dog/mute.mp4", "cat/broken.mp4"}
    manifest = read_manifest(report.manifest)
    assert len(manifest) == 8 and {r.label for r in manifest} == {"dog", "cat"}
    assert [r.t for r in manifest if r.label == "dog"] == [0.25, 0.75, 1.25, 1.75]
    assert {r.split for r in manifest if r.label == "dog"} == {hashed_split("dog/dog.mp4", 0.1, 0.1)}
    assert check_manifest(report.manifest).ok
    assert line_times(2.0, None) == [1.0] and line_times(0.3, 1.0) == [0.15]

    (tmp_path / "labels.csv").write_text("file,label,split\ndog/dog.mp4,7,test\n")
    report = build_from_videos(src, tmp_path / "csv", VideosConfig(label_from=str(tmp_path / "labels.csv"), extract=True))
    manifest = read_manifest(report.manifest)
    assert [(r.label, r.split, r.video) for r in manifest] == [("7", "test", None)]  # extracted: files, not video
    assert (tmp_path / "csv" / manifest.records[0].paths["image"]).is_file() and check_manifest(report.manifest).ok
    assert any(s["id"] == "cat/cat.mp4" and "not listed" in s["reason"] for s in report.skipped)


def test_from_videos_cli_teaches_and_refuses_clearly(clip, tmp_path):
    def avkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "avkit", *args], capture_output=True, text=True, cwd=tmp_path)

    res = avkit("data", "from-videos", "--help")
    assert res.returncode == 0 and "--every" in res.stdout and "labels.csv" in res.stdout
    (tmp_path / "clips").mkdir()
    res = avkit("data", "from-videos", "clips", "--out", "out")
    assert res.returncode == 2 and "clips: holds no video files" in res.stderr and "Traceback" not in res.stderr
    res = avkit("data", "from-videos", "clips", "--out", "out", "--every", "-1")
    assert res.returncode == 2 and "expected a positive number of seconds" in res.stderr
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    res = avkit("data", "from-videos", "clips", "--out", "out", "--every", "1", "--label-from", "none")
    assert res.returncode == 0, res.stderr
    assert "wrote 2 lines" in res.stdout and avkit("data", "check", "out/manifest.jsonl").returncode == 0
