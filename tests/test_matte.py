"""Mattes: chroma key (green/blue, auto key colour, spill, despeckle, garbage, edges), temporal stability, imports."""

import numpy as np
import pytest

from conftest import green_screen_frame
from harmovid_engine.errors import MatteError
from harmovid_engine.matte import (ChromaKeyer, ChromaKeySettings, MatteStore, detect_black_bars, pick_key_colour,
                                   read_matte_frames)
from harmovid_engine.matte.temporal import smooth_alpha_in_time


def test_green_key_recovers_the_talent_and_suppresses_spill():
    frame, cover = green_screen_frame()
    keyer = ChromaKeyer(ChromaKeySettings(), frame)
    assert keyer.settings.screen == "green"
    alpha, despilled = keyer.key(frame)
    inside = cover > 0.99
    outside = green_screen_frame(r=29)[1] < 0.01  # beyond the 1 px denoise blur of the edge
    assert alpha[inside].min() > 0.98
    assert alpha[outside].max() < 0.02
    # an edge pixel contaminated by the screen keeps no green cast after spill suppression
    edge = (cover > 0.3) & (cover < 0.7)
    assert (despilled[edge][:, 1] <= np.maximum(despilled[edge][:, 0], despilled[edge][:, 2]) + 1e-6).all()


def test_blue_screen_is_found_automatically():
    frame, cover = green_screen_frame()
    frame = frame[..., [0, 2, 1]]  # swap G and B: now a blue screen
    screen, key = pick_key_colour(frame)
    assert screen == "blue" and key[2] > key[1]
    alpha, _ = ChromaKeyer(ChromaKeySettings(screen="auto"), frame).key(frame)
    assert np.abs(alpha - cover).mean() < 0.01


def test_no_screen_is_a_clear_error():
    grey = np.full((64, 64, 3), 0.5, np.float32)
    with pytest.raises(MatteError, match="no green screen"):
        ChromaKeyer(ChromaKeySettings(screen="green"), grey)


def test_despeckle_removes_islands_and_fills_holes():
    frame, cover = green_screen_frame(noise=0.0)
    frame[10:12, 10:12] = (0.5, 0.5, 0.5)  # a speck of dirt on the screen
    frame[50:52, 62:64] = (0.25, 0.62, 0.30)  # a green reflection in the face
    alpha, _ = ChromaKeyer(ChromaKeySettings(), frame).key(frame)
    assert alpha[10:12, 10:12].max() < 0.05
    assert alpha[50:52, 62:64].min() > 0.95


def test_garbage_matte_and_choke_feather():
    frame, cover = green_screen_frame(noise=0.0)
    s = ChromaKeySettings(garbage=[0, 0, 64, 96])
    alpha, _ = ChromaKeyer(s, frame).key(frame)
    assert alpha[:, 64:].max() == 0 and alpha[:, :60].max() > 0.9
    full, _ = ChromaKeyer(ChromaKeySettings(), frame).key(frame)
    choked, _ = ChromaKeyer(ChromaKeySettings(choke=3), frame).key(frame)
    grown, _ = ChromaKeyer(ChromaKeySettings(choke=-3), frame).key(frame)
    assert choked.sum() < full.sum() < grown.sum()
    feathered, _ = ChromaKeyer(ChromaKeySettings(feather=2), frame).key(frame)
    assert ((feathered > 0.05) & (feathered < 0.95)).sum() > ((full > 0.05) & (full < 0.95)).sum()


def test_black_bars_become_a_garbage_matte():
    frame, _ = green_screen_frame()
    frame[-10:] = 0.0
    frame[:, :6] = 0.0
    assert detect_black_bars([frame]) == [8, 0, 128 - 8, 96 - 12]
    assert detect_black_bars([green_screen_frame()[0]]) is None


def test_static_shot_key_does_not_boil():
    """Noise-only differences between frames of a still shot: temporal smoothing calms the edge."""
    frames = [green_screen_frame(seed=s, noise=0.02)[0] for s in range(5)]
    keyer = ChromaKeyer(ChromaKeySettings(denoise=0.0), frames[0])
    alphas = [keyer.key(f)[0] for f in frames]
    raw_boil = np.mean([np.abs(alphas[t] - alphas[t - 1]).mean() for t in range(1, 5)])
    smoothed = [smooth_alpha_in_time(alphas[max(0, t - 1):t + 2], frames[max(0, t - 1):t + 2], min(t, 1), 0.05)
                for t in range(5)]
    smooth_boil = np.mean([np.abs(smoothed[t] - smoothed[t - 1]).mean() for t in range(1, 5)])
    assert smooth_boil < 0.7 * raw_boil
    # ... while a moving edge is not smeared: a neighbour with a different colour gets almost no weight
    moved = green_screen_frame(cx=80, noise=0.0)
    a0, a1 = keyer.key(frames[0])[0], keyer.key(moved[0])[0]
    out = smooth_alpha_in_time([a0, a1], [frames[0], moved[0]], 1, 0.05)
    assert np.abs(out - a1).max() < 0.1


def test_real_green_screen_clip_keys_like_the_reference(data_dir):
    from harmovid_engine.matte.provider import codes_to_unit
    from harmovid_engine.media import open_source

    src = open_source(data_dir / "clips" / "d0.mp4")
    ref = np.load(data_dir / "clips" / "d0.alpha.npz")["alpha"]
    frames = [codes_to_unit(src.read(i)) for i in (0, 40, 77)]
    s = ChromaKeySettings(garbage=detect_black_bars(frames))
    keyer = ChromaKeyer(s, frames[0])
    for i, f in zip((0, 40, 77), frames):
        a = keyer.key(f)[0] > 0.5
        r = ref[i, : s.garbage[3]] > 127
        a = a[: s.garbage[3]]
        iou = (a & r).sum() / (a | r).sum()
        assert iou > 0.93, (i, iou)
        # no holes in the face: the reference's interior (10 px inside its soft, upsampled edge) is solid
        import cv2

        core = cv2.erode(r.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
        core[:150] = False  # below the hairline: hair tips are legitimately see-through
        assert a[core].mean() > 0.999


def test_import_npz_resizes_same_aspect_and_refuses_bad_mattes(tmp_path):
    alpha = np.zeros((4, 24, 32), np.uint8)
    alpha[:, 6:18, 8:24] = 255
    np.savez_compressed(tmp_path / "m.alpha.npz", alpha=alpha)
    frames = list(read_matte_frames(tmp_path / "m.alpha.npz", 64, 48, 3))
    assert len(frames) == 3 and frames[0].shape == (48, 64) and frames[0][24, 32] == 1.0
    with pytest.raises(MatteError, match="aspect"):
        list(read_matte_frames(tmp_path / "m.alpha.npz", 64, 64, 3))
    with pytest.raises(MatteError, match="has 4 frames but the talent has 9"):
        list(read_matte_frames(tmp_path / "m.alpha.npz", 32, 24, 9))
    np.savez_compressed(tmp_path / "empty.alpha.npz", alpha=np.zeros((3, 24, 32), np.uint8))
    with pytest.raises(MatteError, match="empty"):
        list(read_matte_frames(tmp_path / "empty.alpha.npz", 32, 24, 3))
    with pytest.raises(MatteError, match="does not exist"):
        list(read_matte_frames(tmp_path / "nope.npz", 32, 24, 3))


def test_import_png_sequence_and_matte_video(tmp_path, make_clip):
    from conftest import write_clip

    seq = write_clip(tmp_path / "mseq", 5, "png", w=32, h=24)
    assert len(list(read_matte_frames(seq, 32, 24, 5))) == 5
    vid = make_clip("m.mp4", n=5, w=32, h=24)
    assert len(list(read_matte_frames(vid, 32, 24, 5))) == 5


def test_matte_store_round_trip(tmp_path):
    store = MatteStore(tmp_path / "mattes")
    a = np.linspace(0, 1, 200, dtype=np.float32).reshape(10, 20)
    store.put(7, a)
    assert store.frames() == [7] and 7 in store and 3 not in store
    assert np.abs(store.get(7) - a).max() <= 0.5 / 255 + 1e-6
    assert store.get(3) is None
    store.delete(7)
    assert store.frames() == []


@pytest.mark.parametrize("kind", ["stored", "none"])
def test_talent_linear_fast_path_equals_the_general_one(tmp_path, make_clip, kind):
    """8-bit talent with a stored (or no) matte is decoded by one table lookup; it must give exactly what the
    general path (code values -> 16-bit decoding table) gives, edited frames and choke/feather included."""
    from types import SimpleNamespace

    from harmovid_engine.colour import to_linear
    from harmovid_engine.matte import MatteStage
    from harmovid_engine.media import open_source

    src = open_source(make_clip("t.mp4", n=4, w=32, h=24))
    store = MatteStore(tmp_path / "mattes")
    a = np.zeros((24, 32), np.float32)
    a[4:20, 6:26] = 1.0
    for i in range(4):
        if kind == "stored" or i == 2:  # "none": one edited frame
            store.put(i, a)
    settings = SimpleNamespace(source=kind, temporal_radius=0, choke=1.0, feather=1.5, key={})
    stage = MatteStage(src, settings, store)
    for i in range(4):
        lin, alpha = stage.talent_linear(i)
        codes, ref_alpha = stage.talent(i)
        np.testing.assert_array_equal(lin, to_linear((codes * 65535.0 + 0.5).astype(np.uint16)))
        np.testing.assert_array_equal(alpha, ref_alpha)
    src.close()
