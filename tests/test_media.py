"""Media I/O: probing, frame-accurate reads, writers, colour round trips, bad files."""

import random
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from conftest import decode_index, ffmpeg, index_frame, write_clip
from harmovid_engine.colour import from_linear, linear_to_srgb, srgb_to_linear, to_linear
from harmovid_engine.errors import MediaError
from harmovid_engine.media import open_source, open_writer, probe
from harmovid_engine.media.writer import AudioSource


def test_probe_reports_the_shared_clip(data_dir):
    info = probe(data_dir / "clips" / "d0.mp4")
    assert (info.width, info.height, info.frame_count) == (512, 512, 78)
    assert info.fps == Fraction(25) and info.kind == "video"
    assert info.color_matrix == "bt709" and info.color_range == "tv" and not info.has_alpha
    bikes = probe(data_dir / "plates" / "plate_bikes.mp4")
    assert bikes.frame_count == 250 and bikes.color_matrix == "bt601"  # untagged SD -> BT.601
    still = probe(data_dir / "plates" / "plate_11.jpg")
    assert still.kind == "still" and still.frame_count is None and (still.width, still.height) == (896, 1152)


def test_frame_accurate_random_reads_on_h264_with_bframes(tmp_path):
    path = write_clip(tmp_path / "idx.mp4", 120, "h264", preset="medium")  # x264 medium uses B-frames
    src = open_source(path)
    assert len(src) == 120
    sequential = [decode_index(f) for _, f in src.frames()]
    assert sequential == list(range(120))
    rng = random.Random(7)
    for i in rng.sample(range(120), 25) + [0, 119, 60, 61, 59]:
        src.cache.clear()
        assert decode_index(src.read(i)) == i
    # reading backwards and jumping forward far both seek exactly
    for i in (100, 3, 97, 50):
        src.cache.clear()
        assert decode_index(src.read(i)) == i
    src.close()


def test_scrubbing_hits_the_frame_cache(tmp_path):
    src = open_source(write_clip(tmp_path / "c.mp4", 30))
    for i in (5, 6, 7, 6, 5, 7):
        src.read(i)
    assert src.cache.hits >= 3
    seeks = src.seeks
    src.read(6)
    assert src.seeks == seeks


def test_stepping_back_after_a_seek_decodes_nothing(tmp_path):
    """A seek decodes from the keyframe before its target; the frames it passes on the way (up to SEEK_AHEAD_LIMIT
    back, never before that keyframe) are kept, so stepping back shows them without another seek."""
    from harmovid_engine.media.source import SEEK_AHEAD_LIMIT

    path = tmp_path / "gop.mp4"
    ffmpeg("-i", str(write_clip(tmp_path / "src.mp4", 90, crf=18)), "-c:v", "libx264", "-g", "30", "-crf", "18",
           "-pix_fmt", "yuv420p", str(path))
    src = open_source(path)
    assert decode_index(src.read(75)) == 75
    seeks = src.seeks
    for i in range(74, 59, -1):  # back to the keyframe at 60
        assert decode_index(src.read(i)) == i
    assert src.seeks == seeks
    assert 59 not in src._preroll and src.cache.get(59) is None  # before the keyframe the seek landed on: not decoded
    assert decode_index(src.read(59)) == 59 and src.seeks == seeks + 1
    src.cache.clear()
    src.read(89)
    assert 89 - SEEK_AHEAD_LIMIT in src._preroll and 88 - SEEK_AHEAD_LIMIT not in src._preroll


@pytest.mark.parametrize("kind", ["h264", "full_range_444", "prores4444_alpha"])
def test_the_decoder_gives_ffmpegs_own_pixels(tmp_path, kind):
    """Frames decoded in process are the ffmpeg command line's conversion to the bit (matrix, range, depth, alpha)."""
    from harmovid_engine.media.ffmpeg import ffmpeg_exe

    src_clip = write_clip(tmp_path / "src.mp4", 12, crf=18)
    path = tmp_path / ("c.mov" if "prores" in kind else "c.mp4")
    enc = {"h264": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
           "full_range_444": ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-color_range", "pc"],
           "prores4444_alpha": ["-vf", "format=yuva444p10le", "-c:v", "prores_ks", "-profile:v", "4444"]}[kind]
    ffmpeg("-i", str(src_clip), *enc, str(path))
    info = probe(path)
    with open_source(path) as src:
        ours = np.stack([f for _, f in src.frames()])
    scale = "flags=bicubic+accurate_rnd+full_chroma_int:out_range=pc"
    scale += f":in_color_matrix={info.color_matrix}:in_range={info.color_range}"
    pix = {"h264": "rgb24", "full_range_444": "rgb24", "prores4444_alpha": "rgba64le"}[kind]
    raw = subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-vf", "scale=" + scale, "-f",
                          "rawvideo", "-pix_fmt", pix, "-"], capture_output=True, check=True).stdout
    theirs = np.frombuffer(raw, np.uint16 if pix == "rgba64le" else np.uint8).reshape(ours.shape)
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


def test_colour_transfer_round_trip_is_exact_for_every_code():
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(from_linear(to_linear(codes)), codes)
    c16 = np.arange(0, 65536, 7, dtype=np.uint16)
    assert np.abs(from_linear(to_linear(c16), np.uint16).astype(int) - c16).max() <= 8  # < 1/8000 of range
    v = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-5)


PATCHES = np.array([[0.1, 0.2, 0.3], [0.9, 0.85, 0.8], [0.5, 0.5, 0.5], [0.8, 0.2, 0.1], [0.2, 0.7, 0.3],
                    [0.05, 0.05, 0.6], [0.98, 0.98, 0.98], [0.02, 0.02, 0.02]], np.float32)


def _patch_frame(w=128, h=64):
    img = np.zeros((h, w, 3), np.uint8)
    pw = w // 4
    for k, c in enumerate(PATCHES):
        y, x = divmod(k, 4)
        img[y * 32:(y + 1) * 32, x * pw:(x + 1) * pw] = np.round(c * 255)
    return img


def _patch_errors(a, b):
    """Per patch and channel absolute error of the patch means, in 8-bit code values."""
    errs = []
    for k in range(len(PATCHES)):
        y, x = divmod(k, 4)
        sl = (slice(y * 32 + 6, (y + 1) * 32 - 6), slice(x * 32 + 6, (x + 1) * 32 - 6))
        errs.append(np.abs(a[sl].astype(float).mean((0, 1)) - b[sl].astype(float).mean((0, 1))))
    return np.array(errs)


# ProRes 4444 (10-bit 4:4:4) keeps every patch within a fraction of a code value. H.264 yuv420p is 8-bit limited
# range: 219 luma levels cannot hold 256 RGB codes, so single channels may land one code away; the mean stays < 0.5.
@pytest.mark.parametrize("fmt,name,max_tol,mean_tol", [("prores4444", "p.mov", 0.6, 0.3), ("h264", "h.mp4", 1.0, 0.5)])
def test_colour_round_trip_through_codecs_under_one_code_value(tmp_path, fmt, name, max_tol, mean_tol):
    img = _patch_frame()
    with open_writer(fmt, tmp_path / name, 128, 64, Fraction(25), **({"crf": 4} if fmt == "h264" else {})) as w:
        for _ in range(3):
            w.write(to_linear(img))
    src = open_source(tmp_path / name)
    back = src.read(1)[..., :3]
    if back.dtype == np.uint16:
        back = back.astype(np.float64) / 257.0
    errs = _patch_errors(back, img)
    assert errs.max() <= max_tol and errs.mean() < mean_tol


def test_prores_4444_alpha_round_trip(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 160, dtype=np.float32), (96, 1))
    path = write_clip(tmp_path / "a.mov", 6, "prores4444", alpha=lambda i: ramp)
    info = probe(path)
    assert info.has_alpha and info.codec == "prores" and info.frame_count == 6
    src = open_source(path)
    rgb, alpha = src.read_linear(3)
    assert alpha is not None and np.abs(alpha - ramp).max() < 2e-3
    assert decode_index(src.read(3)) == 3
    # full BT.709 tags (matrix, primaries, transfer), as the H.264 files carry: ffmpeg shows "bt709" once for all
    from harmovid_engine.media.ffmpeg import run_ffmpeg

    stream = [ln for ln in run_ffmpeg(["-i", str(path)]).stderr.decode().splitlines() if "Video:" in ln][0]
    assert "(tv, bt709, progressive)" in stream, stream


@pytest.mark.parametrize("depth", [8, 16])
def test_png_sequence_round_trip_with_alpha(tmp_path, depth):
    alpha = np.tile(np.linspace(0, 1, 160, dtype=np.float32), (96, 1))
    out = tmp_path / f"seq{depth}"
    write_clip(out, 5, "png", alpha=lambda i: alpha, bit_depth=depth)
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [".harmovid-render.json"] + [f"frame_{i:05d}.png" for i in range(5)]
    for pattern in (out, out / "frame_%05d.png"):
        src = open_source(pattern)
        assert len(src) == 5 and src.info.has_alpha and src.info.kind == "sequence"
        frame = src.read(4)
        assert frame.dtype == (np.uint8 if depth == 8 else np.uint16)
        code = frame[..., :3] if depth == 8 else (frame[..., :3].astype(np.float64) / 257).round().astype(np.uint8)
        assert np.array_equal(code, index_frame(4))
        _, a = src.read_linear(2)
        assert np.abs(a - alpha).max() <= (0.5 / 255 if depth == 8 else 1e-4)


def test_sequence_with_a_missing_frame_is_refused(tmp_path):
    out = write_clip(tmp_path / "seq", 4, "png")
    (out / "frame_00002.png").unlink()
    with pytest.raises(MediaError, match="missing frame"):
        open_source(out)


@pytest.mark.parametrize("kind", ["zero", "text", "random", "truncated", "missing"])
def test_bad_files_give_clear_errors(tmp_path, kind):
    good = write_clip(tmp_path / "good.mp4", 40)
    bad = tmp_path / f"bad_{kind}.mp4"
    if kind == "zero":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("this is not a video\n" * 20)
    elif kind == "random":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])  # faststart: moov first, half the frames' data gone
    with pytest.raises(MediaError) as err:
        src = open_source(bad)
        for _ in src.frames():
            pass
    msg = str(err.value)
    assert bad.name in msg and "\n" not in msg and "Traceback" not in msg


def test_truncated_file_without_index_is_refused_at_probe(tmp_path):
    good = tmp_path / "g.mov"
    write_clip(good, 20, "prores4444")  # mov without faststart: the index (moov) is at the end
    bad = tmp_path / "cut.mov"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MediaError, match="cut.mov"):
        probe(bad)


def test_writer_leaves_nothing_when_aborted(tmp_path):
    dest = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with open_writer("h264", dest, 64, 64, Fraction(25)) as w:
            w.write(np.zeros((64, 64, 3), np.float32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_encoder_that_dies_mid_export_gives_a_clear_error_and_leaves_nothing(tmp_path):
    """Frames are piped from a feeder thread: when ffmpeg dies, the next write (or close) says so, nothing is left
    behind, and the feeder thread ends."""
    dest = tmp_path / "dies.mp4"
    w = open_writer("h264", dest, 64, 64, Fraction(25))
    w.write_codes(np.zeros((64, 64, 3), np.uint8))
    w._proc.kill()
    w._proc.wait()
    with pytest.raises(MediaError, match="dies.mp4.*encoder stopped"):
        for _ in range(50):
            w.write_codes(np.zeros((64, 64, 3), np.uint8))
        w.close()
    assert not w._feeder.is_alive()
    assert list(tmp_path.iterdir()) == []


def test_h264_odd_size_and_tags(tmp_path):
    dest = tmp_path / "odd.mp4"
    with open_writer("h264", dest, 63, 41, Fraction(30000, 1001)) as w:
        for i in range(3):
            w.write(np.full((41, 63, 3), 0.2, np.float32))
    info = probe(dest)
    assert info.fps == Fraction(30000, 1001) and info.frame_count == 3
    assert info.color_tags == "bt709" and (info.width, info.height) == (64, 42)


def test_in_process_4_2_0_conversion_matches_ffmpegs(tmp_path, monkeypatch):
    """Even-sized H.264 frames are converted to BT.709 limited-range 4:2:0 in process: luma within one code of
    ffmpeg's own conversion everywhere, chroma of flat areas too (the filters differ at edges); the file decodes to
    the same colours either way."""
    import harmovid_engine.composite.fast as fast
    from harmovid_engine.media.ffmpeg import ffmpeg_exe

    img = _patch_frame()
    img[:4] = np.arange(4 * 128 * 3).reshape(4, 128, 3) % 256  # some detail (outside the measured patches)
    packed = fast.rgb_to_i420(img)
    run = subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x64",
                          "-i", "-", "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd",
                          "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"], input=img.tobytes(), capture_output=True,
                         check=True)
    ref = np.frombuffer(run.stdout, np.uint8)
    n = 128 * 64
    assert np.abs(packed[:n].astype(int) - ref[:n]).max() <= 1
    cb, rcb = packed[n:n + n // 4].reshape(32, 64), ref[n:n + n // 4].reshape(32, 64)
    flat = (slice(3, 13), slice(8, 13))  # inside the first patch (chroma is at half resolution)
    assert np.abs(cb[flat].astype(int) - rcb[flat]).max() <= 1
    decoded = {}
    for kernel in (True, False):
        monkeypatch.setattr(fast, "kernel_available", lambda k=kernel: k)
        with open_writer("h264", tmp_path / f"k{kernel}.mp4", 128, 64, Fraction(25), crf=4) as w:
            assert w.input_pix_fmt() == ("yuv420p" if kernel else "rgb24")
            scratch = img.copy()  # frames are piped after write_codes returns: what is queued must not alias them
            queued = w._pack(scratch)
            scratch[:] = 0
            assert bytes(queued) == bytes(w._pack(img))
            for _ in range(3):
                w.write_codes(img)
        decoded[kernel] = open_source(tmp_path / f"k{kernel}.mp4").read(1)[..., :3]
        errs = _patch_errors(decoded[kernel], img)  # (the detail band adds a little coding noise near it)
        assert errs.max() <= 1.5 and errs.mean() < 0.5
        assert probe(tmp_path / f"k{kernel}.mp4").color_tags == "bt709"


def test_audio_of_the_talent_is_carried_into_exports(tmp_path):
    talent = tmp_path / "talk.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=2", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(talent))
    assert probe(talent).has_audio
    for fmt, name in (("h264", "o.mp4"), ("prores4444", "o.mov")):
        with open_writer(fmt, tmp_path / name, 96, 64, Fraction(25), audio=AudioSource(str(talent), 0.4, 1.0)) as w:
            for _ in range(25):
                w.write(np.zeros((64, 96, 3), np.float32))
        assert probe(tmp_path / name).has_audio
