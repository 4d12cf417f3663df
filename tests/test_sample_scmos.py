"""SCMOSScene: the camera model behind make bench's data (docs/performance.md)."""

import numpy as np
import tifffile

from imagingdb.testing import SCMOSScene, write_mm_ometiff


def test_frames_are_deterministic_per_index_and_seed():
    scene = SCMOSScene(96, 80, nbr_slices=3, seed=4)
    again = SCMOSScene(96, 80, nbr_slices=3, seed=4)
    frame = scene.frame(1, 2, 0, 0)
    assert frame.dtype == np.uint16 and frame.shape == (96, 80)
    np.testing.assert_array_equal(again.frame(1, 2, 0, 0), frame)
    assert not np.array_equal(scene.frame(1, 2, 1, 0), frame)  # fresh noise at each time point
    assert not np.array_equal(SCMOSScene(96, 80, nbr_slices=3, seed=5).frame(1, 2, 0, 0), frame)


def test_background_and_noise_are_those_of_the_camera_model():
    scene = SCMOSScene(256, 256, seed=1)
    frame = scene.frame(0, 0, 0, 0).astype(float)
    camera, look = scene.camera, scene.channels[0]
    background = frame[frame < np.percentile(frame, 50)]
    # Half the pixels are background: offset + gain * ~25 e- (vignetted), shot-noise limited.
    expected_level = camera.offset_adu + camera.adu_per_electron * look.background_e
    assert abs(np.median(frame) - expected_level) < 0.15 * expected_level
    shot_noise = camera.adu_per_electron * np.sqrt(look.background_e)
    rows = frame[:32, :32]  # a corner: mostly background; noise around its local mean
    assert 0.5 * shot_noise < rows.std() < 3 * shot_noise
    assert frame.max() > expected_level + camera.adu_per_electron * look.peak_e[0] / 2  # cells
    assert background.min() > camera.offset_adu - 10


def test_mm_ometiff_pages_come_from_the_scene(tmp_path):
    scene = SCMOSScene(40, 48, nbr_slices=2, seed=3)
    (path,) = write_mm_ometiff(tmp_path, "cam", channels=("DAPI", "GFP"), slices=2, times=1,
                               positions=1, height=40, width=48, scene=scene)
    with tifffile.TiffFile(path) as tif:
        pages = [page.asarray() for page in tif.pages]
    # Micro-Manager order: time, slice, channel fastest.
    expected = [scene.frame(c, z, 0, 0) for z in range(2) for c in range(2)]
    assert len(pages) == len(expected) == 4
    for page, frame in zip(pages, expected):
        np.testing.assert_array_equal(page, frame)
