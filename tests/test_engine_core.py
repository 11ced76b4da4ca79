"""Intensity contract, networks, bundles and the Translator on tiny real networks."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aimedx_desktop.engine.bundle import BundleError, load_bundle, save_bundle
from aimedx_desktop.engine.intensity import CTContract, IntensityContract, LinearMap, MRContract
from aimedx_desktop.engine.networks import GeneratorConfig, PatchDiscriminator, ResnetGenerator
from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.preprocess import SliceLayout
from aimedx_desktop.engine.translator import Translator

ENGINE = Path(__file__).resolve().parent.parent / "aimedx_desktop" / "engine"


def test_engine_never_imports_qt():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6") for n in names):
                offenders.append(f"{path.name}: {names}")
    assert not offenders, offenders


def test_ct_window_round_trip_is_exact_inside_the_window():
    window = CTContract(-40.0, 150.0).window
    hu = np.linspace(-40.0, 150.0, 1001, dtype=np.float32)
    assert np.allclose(window.from_model(window.to_model(hu)), hu, atol=1e-4)
    assert window.to_model(np.array([-1000.0, 3000.0])).tolist() == [-1.0, 1.0]


def test_mr_percentile_map_round_trip_and_range():
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 100.0, (64, 64)).astype(np.float32)
    mapping = MRContract(1.0, 99.0).input_map(values)
    assert mapping.lo == pytest.approx(np.percentile(values, 1.0))
    normalized = mapping.to_model(values)
    assert normalized.min() == -1.0 and normalized.max() == 1.0
    inside = (values >= mapping.lo) & (values <= mapping.hi)
    assert np.allclose(mapping.from_model(normalized)[inside], values[inside], rtol=1e-5, atol=1e-3)


def test_flat_slice_gets_a_non_empty_window():
    assert MRContract().input_map(np.zeros((8, 8))).hi > 0.0
    with pytest.raises(ValueError):
        LinearMap(3.0, 3.0)


def test_contract_json_round_trip_ignores_descriptive_keys():
    contract = IntensityContract(CTContract(-40, 150), MRContract(0.5, 99.5))
    data = json.loads(json.dumps(contract.to_dict()))
    data["ct"]["note"] = "estimated from tissue values"
    assert IntensityContract.from_dict(data) == contract
    with pytest.raises(ValueError):
        IntensityContract.from_dict({"ct": {}})


def test_generator_is_fully_convolutional_and_bounded():
    generator = ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=2)).eval()
    with torch.no_grad():
        for side in (32, 64):
            out = generator(torch.randn(2, 1, side, side))
            assert out.shape == (2, 1, side, side)
            assert out.abs().max() <= 1.0


def test_patch_discriminator_gives_a_patch_map():
    out = PatchDiscriminator(ndf=8)(torch.randn(1, 1, 256, 256))
    assert out.shape == (1, 1, 30, 30)  # the 70x70 PatchGAN on 256x256


def test_bundle_save_load_round_trip(tiny_bundle, tmp_path):
    path = save_bundle(tiny_bundle, tmp_path / "m")
    loaded = load_bundle(path)
    assert loaded.name == "tiny-test" and loaded.contract == tiny_bundle.contract
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.generator(Modality.MR)(x), tiny_bundle.generator(Modality.MR)(x))
    save_bundle(tiny_bundle, path)  # overwriting an existing bundle leaves a complete one
    assert load_bundle(path).version == "0.0.1"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_bundle_refuses_pickled_code(tiny_bundle_dir, tmp_path):
    import shutil

    evil = tmp_path / "evil"
    shutil.copytree(tiny_bundle_dir, evil)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"mr2ct": Payload(), "ct2mr": {}}, evil / "weights.pt")
    with pytest.raises(BundleError, match="holds code or objects other than tensors"):
        load_bundle(evil)


@pytest.mark.parametrize(
    "card, message",
    [(None, "no model_card.json"), ("{not json", "unreadable"), ('{"format": "other"}', "not an aimedx-bundle")],
)
def test_bundle_errors_name_the_problem(tmp_path, card, message):
    if card is not None:
        (tmp_path / "model_card.json").write_text(card)
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path)


def test_card_with_a_bad_contract_or_version_is_refused_up_front(tiny_bundle_dir, tmp_path):
    import shutil

    for change, message in (
        (lambda card: card["intensity"]["ct"].update(hi_hu=-2000.0), "empty intensity window"),
        (lambda card: card.update(format_version="1"), "whole number"),
        (lambda card: card.update(image_size=66), "not a multiple of 4"),
        (lambda card: card.update(inference={"mirror_average": "yes"}), "true or false"),
        (lambda card: card.update(inference={"mirror": True}), "unknown inference option"),
    ):
        folder = shutil.copytree(tiny_bundle_dir, tmp_path / str(len(list(tmp_path.iterdir()))))
        card = json.loads((folder / "model_card.json").read_text())
        change(card)
        (folder / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(BundleError, match=message):
            load_bundle(folder)


def test_failed_save_keeps_the_previous_bundle(tiny_bundle, tmp_path, monkeypatch):
    path = save_bundle(tiny_bundle, tmp_path / "m")
    before = (path / "weights.pt").read_bytes()
    real_rename = Path.rename

    def rename(self, target):
        if Path(target) == path and self.name.startswith(".m.") and not self.name.endswith(".old"):
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(BundleError, match=r"cannot save the model bundle .*/m: the disk is full"):
        save_bundle(tiny_bundle, path)
    monkeypatch.undo()
    assert (path / "weights.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o700)


def test_slice_layout_keeps_physical_aspect():
    layout = SliceLayout.fit((232, 160), (0.9, 1.0), 256, 4)
    assert layout.rows == 256
    assert layout.cols == pytest.approx(256 * 160 / (232 * 0.9), abs=1)
    assert layout.left == (256 - layout.cols) // 2


def test_translator_keeps_geometry_and_labels_synthetic(tiny_bundle, ct_scan):
    seen = []
    synthetic = Translator(tiny_bundle, device="cpu", batch_size=2).translate(ct_scan, progress=lambda d, t: seen.append((d, t)))
    assert synthetic.modality is Modality.MR
    assert synthetic.shape == ct_scan.shape
    assert synthetic.geometry is ct_scan.geometry
    assert synthetic.provenance.synthetic and synthetic.provenance.model_name == "tiny-test"
    assert synthetic.provenance.direction == "ct2mr"
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == [2, 4, 5]
    assert synthetic.voxels.std() > 0


class _Constant(torch.nn.Module):
    """A generator whose every output pixel is `value` (tanh range or beyond)."""

    size_multiple = 4

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value)


class _Identity(torch.nn.Module):
    size_multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_translator_geometry_round_trip_with_an_identity_network(tiny_bundle, ct_scan):
    """With a generator that changes nothing, CT→'MR'→CT must return the input (no flip, shift,
    transpose or rescale in the resize/pad/crop path), up to resampling blur."""
    import copy

    bundle = copy.copy(tiny_bundle)
    bundle.generators = {"mr2ct": _Identity(), "ct2mr": _Identity()}
    bundle.contract = IntensityContract(CTContract(-100.0, 200.0), MRContract(0.0, 100.0))
    asymmetric = ct_scan.voxels.copy()
    asymmetric[:, 5:12, 3:9] = 150.0  # a bright block in the top-left quadrant
    ct_scan.voxels = asymmetric
    synthetic = Translator(bundle, device="cpu").translate(ct_scan)
    mr_range = bundle.contract.mr
    back = bundle.contract.ct.window.from_model(
        LinearMap(mr_range.synthetic_lo, mr_range.synthetic_hi).to_model(synthetic.voxels)
    )
    expected = np.clip(asymmetric, -100.0, 200.0)
    assert np.abs(back - expected).mean() < 12.0
    assert back[:, 6:11, 4:8].mean() > 120.0 and back[:, 20:28, 16:24].mean() < 60.0


class _IdentityPlusRamp(torch.nn.Module):
    """The input plus a left-to-right ramp: not mirror-symmetric, so only a correct mirror average
    (mirror the input, mirror the output back) cancels the ramp and leaves the input."""

    size_multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.linspace(-0.5, 0.5, x.shape[-1])


def test_mirror_averaging_averages_the_slice_with_its_mirror_image(tiny_bundle, ct_scan):
    import copy

    ct_scan.voxels[:, 5:12, 3:9] = 150.0  # asymmetric, so a missed flip shows
    plain = copy.copy(tiny_bundle)
    plain.generators = {"mr2ct": _Identity(), "ct2mr": _Identity()}
    mirrored = copy.copy(tiny_bundle)
    mirrored.card = {**tiny_bundle.card, "inference": {"mirror_average": True}}
    mirrored.generators = {"mr2ct": _IdentityPlusRamp(), "ct2mr": _IdentityPlusRamp()}
    expected = Translator(plain, device="cpu").translate(ct_scan).voxels
    np.testing.assert_allclose(Translator(mirrored, device="cpu").translate(ct_scan).voxels, expected, atol=1e-3)
    mirrored.card = tiny_bundle.card  # the same ramp without the average stays
    assert np.abs(Translator(mirrored, device="cpu").translate(ct_scan).voxels - expected).max() > 50.0


@pytest.mark.parametrize(
    ("output", "hu", "mr_units"),
    [(0.5, 125.0, 750.0), (-0.2, 20.0, 400.0), (3.0, 200.0, 1000.0), (-3.0, -100.0, 0.0)],
)
def test_translator_maps_the_network_output_to_physical_units(tiny_bundle, ct_scan, output, hu, mr_units):
    """CT window [-100, 200] HU and synthetic MR on [0, 1000]: value = lo + (output + 1) / 2 * (hi - lo),
    clipped at the window's ends for outputs beyond [-1, 1]."""
    import copy
    import dataclasses

    bundle = copy.copy(tiny_bundle)
    bundle.generators = {"mr2ct": _Constant(output), "ct2mr": _Constant(output)}
    translator = Translator(bundle, device="cpu")
    synthetic_ct = translator.translate(dataclasses.replace(ct_scan, modality=Modality.MR))
    synthetic_mr = translator.translate(ct_scan)
    assert synthetic_ct.modality is Modality.CT and synthetic_mr.modality is Modality.MR
    np.testing.assert_allclose(synthetic_ct.voxels, hu, atol=1e-3)
    np.testing.assert_allclose(synthetic_mr.voxels, mr_units, atol=1e-3)


def test_translator_says_what_the_models_ct_window_does(tiny_bundle, ct_scan):
    """A synthetic CT is written as HU, but only the tiny model's [-100, 200] HU window is in it."""
    translator = Translator(tiny_bundle, device="cpu")
    synthetic_mr = translator.translate(ct_scan)
    assert synthetic_mr.warnings == () and synthetic_mr.provenance.value_range == (0.0, 1000.0)
    synthetic_ct = translator.translate(synthetic_mr)
    assert synthetic_ct.provenance.value_range == (-100.0, 200.0)
    assert synthetic_ct.warnings[-1].startswith("synthetic CT values are limited to the model's window [-100, 200] HU")
    assert synthetic_ct.voxels.min() >= -100.0 and synthetic_ct.voxels.max() <= 200.0


def test_translator_cancel_stops_between_batches(tiny_bundle, ct_scan):
    token = CancelToken()
    done = []

    def progress(d, t):
        done.append(d)
        token.cancel()

    with pytest.raises(Cancelled):
        Translator(tiny_bundle, device="cpu", batch_size=2).translate(ct_scan, progress=progress, cancel=token)
    assert done == [2]


def test_translator_rejects_same_modality(tiny_bundle, ct_scan):
    with pytest.raises(ValueError, match="already CT"):
        Translator(tiny_bundle, device="cpu").translate(ct_scan, target=Modality.CT)


def _imported_modules(path: Path) -> set[str]:
    """The aimedx_desktop.engine modules `path` imports at module level (not inside functions),
    with the packages whose __init__ such an import runs."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(3, len(parts) + 1) if parts[:2] == ["aimedx_desktop", "engine"]}
    return found


def _engine_modules() -> dict[str, Path]:
    modules = {}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_engine_modules_import_each_other_without_a_cycle():
    modules = _engine_modules()
    graph = {  # a module's own packages are already importing when it runs: not an edge
        name: sorted(t for t in _imported_modules(path) & set(modules) if t != name and not name.startswith(t + "."))
        for name, path in modules.items()
    }
    cycles, state = [], {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in graph[name]:
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert "aimedx_desktop.engine.bundle" in graph and graph["aimedx_desktop.engine.bundle"]
    assert not cycles, cycles


def test_a_png_export_does_not_import_torch(tmp_path):
    """Writers need geometry and intensity helpers, never the inference machinery."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import numpy as np\n"
        "from aimedx_desktop.engine.io.export import export_scan\n"
        "from aimedx_desktop.engine.scan import Modality, Provenance, Scan\n"
        "provenance = Provenance(('x.png',), 'png', True, 'tiny', '1', 'mr2ct')\n"
        "scan = Scan(np.zeros((2, 8, 8), np.float32), Modality.CT, provenance=provenance)\n"
        "print(len(export_scan(scan, sys.argv[1], fmt='png')), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "False"]


@pytest.mark.parametrize("mode, checkerboard", [("transpose", True), ("resize", False)])
def test_resize_upsampling_cannot_make_a_checkerboard(mode, checkerboard):
    """A flat input upsampled by a stride-2 transposed convolution comes out with a period-2
    pattern (uneven kernel overlap, Odena et al. 2016); nearest resize + convolution stays flat."""
    from aimedx_desktop.engine.networks import _upsample

    torch.manual_seed(0)
    layer = torch.nn.Sequential(*_upsample(8, 4, mode))
    with torch.no_grad():
        out = layer(torch.ones(1, 8, 16, 16))[0, :, 4:-4, 4:-4]  # the interior, away from the padding
    even, odd = out[:, 0::2, 0::2], out[:, 1::2, 1::2]
    assert bool((even - odd).abs().max() > 1e-3) is checkerboard
    assert bool(out.std(dim=(1, 2)).max() > 1e-3) is checkerboard


def test_a_format_1_bundle_still_loads_and_translates(tmp_path, ct_scan):
    """aimedx-brain 1.0.0 stored one `model` Sequential per generator and no architecture name."""
    import json

    from aimedx_desktop.engine.bundle import load_bundle
    from aimedx_desktop.engine.networks import build_generator

    config = GeneratorConfig(ngf=4, n_blocks=1)
    reference = build_generator(config).eval()
    flat = {}
    for index, layer in enumerate([*reference.features, *reference.image_head]):
        for key, value in layer.state_dict().items():
            flat[f"model.{index}.{key}"] = value
    folder = tmp_path / "v1"
    folder.mkdir()
    torch.save({"mr2ct": flat, "ct2mr": flat}, folder / "weights.pt")
    arch = {"in_channels": 1, "out_channels": 1, "ngf": 4, "n_blocks": 1, "n_downsampling": 2}
    card = {"format": "aimedx-bundle", "format_version": 1, "name": "old", "version": "1.0.0", "image_size": 64,
            "architecture": {"generator": arch},
            "intensity": {"ct": {"lo_hu": -40, "hi_hu": 150}, "mr": {"p_lo": 0, "p_hi": 99.5}}}
    (folder / "model_card.json").write_text(json.dumps(card))
    bundle = load_bundle(folder)
    assert bundle.generator_config.name == "resnet" and bundle.generator_config.upsampling == "transpose"
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bundle.generators["mr2ct"](x), reference(x))
    assert not bundle.has_uncertainty
    assert Translator(bundle, device="cpu").translate(ct_scan).maps == {}
