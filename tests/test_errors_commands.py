"""A user's mistakes on lengths, runs and wheels, and the model-loading line: one line, exit code 2, checked before
the work; the notes that say what a command left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli
from transformers import AutoTokenizer

from feedback_ner.texts import load_texts
from feedback_ner.tokenlengths import summary, token_lengths

CLASSES = ("Lead", "Position", "Claim", "Counterclaim", "Rebuttal", "Evidence", "Concluding Statement")


def fake_run(folder: Path, lr: float, finished: bool = True) -> Path:
    """A run folder as ``train`` leaves it: config.yaml (written first) and, once finished, cv.csv."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model_name_or_path: tiny-bert\nlearning_rate: {lr}\n")
    if finished:
        rows = "\n".join(f"{c},0.5" for c in CLASSES)
        (folder / "cv.csv").write_text(f"class,overall\n{rows}\nmacro,0.5\n")
    return folder


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    fake_run(root / "a", 1e-3)
    fake_run(root / "b", 2e-3)
    for name in ("late1", "late2", "late3"):
        fake_run(root / name, 3e-3, finished=False)
    return root


# ------------------------------------------------------------------------------------------------ lengths


def test_lengths_says_when_it_lowers_the_stride(corpus_dir, tiny_models, tmp_path):
    """A stride of more than half a window is lowered for that length (documented, column ``stride``): the command
    now says so in a line instead of only in the table."""
    png = tmp_path / "l.png"
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", str(tiny_models("bert")),
                   "--lengths", "128", "512", "--stride", "200", "--png", str(png))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: --stride 200 does not fit max_length 128's window (bert): lowered to 63" in done.stdout
    assert "max_length 512" not in done.stdout.split("note:", 1)[1].splitlines()[0]
    tl = token_lengths("bert", AutoTokenizer.from_pretrained(tiny_models("bert")), load_texts(corpus_dir / "train"))
    row = summary([tl], [128], 200).iloc[0]
    assert row["stride"] == 63 and row["windows"] == tl.windows(128, 63).sum()
    # a stride training accepts (below the window's 126 content tokens) is used as given: the windows train cuts
    row = summary([tl], [128], 100).iloc[0]
    assert row["stride"] == 100 and row["windows"] == tl.windows(128, 100).sum()
    with pytest.raises(ValueError, match="stride=200 must be >= 0 and below max_length-2=126"):
        tl.windows(128, 200)


def test_lengths_points_a_run_folder_to_its_fold_checkpoints(corpus_dir, tmp_path):
    run = fake_run(tmp_path / "r2", 1e-3)
    (run / "fold_0" / "model").mkdir(parents=True)
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", str(run), "--png",
                   str(tmp_path / "l.png"))
    assert_one_line_error(done, "lengths", "run folder", str(run / "fold_0" / "model"))


def test_lengths_checks_the_png_path_first(corpus_dir, tmp_path):
    (tmp_path / "afile").write_text("x")
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", str(tmp_path / "no-model"),
                   "--png", str(tmp_path / "afile" / "x.png"))
    # the png is refused before the model is even loaded
    assert_one_line_error(done, "lengths", "--png", "afile is a file, not a folder")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a folder no file can be made in)")
def test_lengths_png_write_failure_is_one_line(corpus_dir, tiny_models):
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", str(tiny_models("bert")),
                   "--lengths", "256", "--png", "/proc/x.png")
    assert_one_line_error(done, "lengths", "--png /proc/x.png", "cannot write it")


def test_offline_hub_name_is_one_clean_line(corpus_dir, tmp_path):
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", "no-such-org/no-such-model",
                   "--png", str(tmp_path / "l.png"), env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    line = assert_one_line_error(done, "lengths", "no-such-org/no-such-model", "not reachable (offline)")
    assert line.endswith("point --model at a downloaded model folder") and "https://)" not in line


def test_shorten_cuts_at_a_sentence_end():
    from feedback_ner.modeling import _shorten

    text = ("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached "
            "files. Check your internet connection or see how to run the library in offline mode at "
            "'https://huggingface.co/docs/transformers/installation#offline-mode'.")
    assert _shorten(text) == text[: text.index(". ") + 1]
    assert _shorten("word " * 100).endswith("word ...") and len(_shorten("word " * 100)) <= 204


# ------------------------------------------------------------------------------------------------ runs


def test_runs_csv_makes_its_folder_and_counts_unfinished_runs(runs_dir, tmp_path):
    csv = tmp_path / "newdir" / "x.csv"
    done = run_cli("feedback_ner.runs", str(runs_dir), "--png", str(tmp_path / "r.png"), "--csv", str(csv),
                   "--data", "none")
    assert done.returncode == 0, done.stderr[-3000:]
    assert csv.is_file()
    assert "2 run(s)" in done.stdout
    assert "left out 3 unfinished run folder(s)" in done.stdout and "late1, late2, late3" in done.stdout
    again = run_cli("feedback_ner.runs", str(runs_dir), "--png", str(tmp_path / "r.png"), "--csv", str(csv),
                    "--data", "none")  # its own chart and table are replaced
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.parametrize("option", ["--csv", "--png"])
def test_runs_refuses_an_output_under_a_file_before_reading_runs(runs_dir, tmp_path, option):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / f"x{option.replace('--', '.')}"
    outputs = {"--png": str(tmp_path / "r.png"), "--csv": str(tmp_path / "r.csv"), option: str(out)}
    args = [token for pair in outputs.items() for token in pair]
    done = run_cli("feedback_ner.runs", str(runs_dir), *args, "--data", "none")
    assert_one_line_error(done, "runs", option, "afile is a file, not a folder")
    assert done.stdout == "" and not (tmp_path / "r.png").exists()


# ------------------------------------------------------------------------------------------------ wheels


@pytest.mark.parametrize("out,needles", [
    ("afile", ["--out", "is a file, not a folder"]),
    ("afile/sub", ["--out", "afile is a file, not a folder"]),
])
def test_wheels_out_is_checked_before_the_build(tmp_path, out, needles):
    (tmp_path / "afile").write_text("x")
    done = run_cli("feedback_ner.wheels", "--out", out, "--no-deps", cwd=tmp_path)
    assert_one_line_error(done, "wheels", *needles)


def test_wheels_refuses_a_python_version_that_is_not_one(tmp_path):
    done = run_cli("feedback_ner.wheels", "--out", str(tmp_path / "w"), "--no-deps", "--python-version", "abc")
    assert_one_line_error(done, "wheels", "--python-version abc", "3.11")
    assert not (tmp_path / "w").exists()


def test_wheels_refuses_another_pythons_version(tmp_path):
    """The pins are this environment's: for another Python a pin may not exist (a newer Python needed) and a
    dependency only that Python needs would be missing; the build failed after writing the feedback_ner wheel."""
    import sys

    other = f"{sys.version_info[0]}.{sys.version_info[1] - 1}"
    done = run_cli("feedback_ner.wheels", "--out", str(tmp_path / "w"), "--python-version", other)
    assert_one_line_error(done, "wheels", f"--python-version {other}", "the dependency pins are this environment's")
    assert not (tmp_path / "w").exists()


def test_wheels_names_what_the_image_must_have():
    """The bundled datasets wheel needs pyarrow>=24 while our own floor says 15: an image between the two could not
    install the folder offline, and nothing said so."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    from feedback_ner.wheels import image_requirements

    needs = image_requirements()
    assert "torch" in needs and "pyarrow" in needs and "datasets" not in needs
    for spec in metadata.requires("datasets") or []:  # every floor datasets puts on pyarrow is named, with its owner
        req = Requirement(spec)
        if req.name == "pyarrow" and req.marker is None:
            assert f"pyarrow{req.specifier} (datasets)" in needs["pyarrow"]
    assert "pyarrow" not in image_requirements(include_base=True)


def test_demo_setup_only_runs_outside_the_repository(tmp_path):
    """``--setup-only`` writes the corpus and the tiny model and needs no training config: run from a folder without
    ``configs/demo.yaml`` (a pip-installed package) it used to stop on the missing config."""
    done = run_cli("feedback_ner.demo", "--out", "d", "--setup-only", "--n", "30", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "d" / "corpus" / "train.csv").is_file()
    assert (tmp_path / "d" / "tiny-longformer" / "config.json").is_file()
