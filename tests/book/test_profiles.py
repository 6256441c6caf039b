"""Notebook profiles (sparsam.book.profiles): consistent defaults, overrides, and errors that name the parameter."""

from __future__ import annotations

import pytest
import yaml

from sparsam.book import layout, profiles


def test_every_notebook_has_the_three_profiles_with_the_same_parameters_and_seed_lists():
    table = profiles.table()
    assert set(table) == {"01_convergence", "02_masks", "03_cifar_accuracy", "04_efficiency", "05_imagenet",
                          "06_landscape", "07_claims", "08_cpu_study", "09_noise_study"}
    for notebook, by_profile in table.items():
        assert tuple(by_profile) == profiles.PROFILES, notebook
        names = [set(values) for values in by_profile.values()]
        assert all(n == names[0] for n in names), notebook
        for values in by_profile.values():
            if notebook == "07_claims":  # it trains nothing: no parameter besides the profile
                assert values == {}
                continue
            if notebook in ("08_cpu_study", "09_noise_study"):  # a registered study's records: its file names the seeds
                assert values == by_profile["quick"] and values["study_file"] == {
                    "08_cpu_study": "results/study/cpu_study.yaml",
                    "09_noise_study": "results/noise_study/noise_study.yaml"}[notebook]
                continue
            assert isinstance(values["seeds"], list) and all(isinstance(s, int) for s in values["seeds"])


def test_none_takes_the_profile_value_and_a_given_value_wins():
    quick = profiles.table()["03_cifar_accuracy"]["quick"]
    p = profiles.parameters("03_cifar_accuracy", "quick", {"epochs": None, "seeds": "[0, 1, 2]", "lr": 0.1})
    assert p.profile == "quick" and p.epochs == quick["epochs"] and p.seeds == [0, 1, 2] and p.lr == 0.1
    paper = profiles.parameters("03_cifar_accuracy", "paper", {})
    assert paper.epochs == 200 and paper.model == "resnet18" and len(paper.seeds) >= 3


def test_bad_profile_notebook_or_seeds_are_refused_by_name():
    with pytest.raises(ValueError, match="^profile: must be one of 'quick', 'cpu-study', 'paper', got 'fast'$"):
        profiles.parameters("03_cifar_accuracy", "fast", {})
    with pytest.raises(ValueError, match="^notebook: must be one of"):
        profiles.parameters("07_nothing", "quick", {})
    with pytest.raises(ValueError, match=r"^seeds: must be a non-empty list of distinct ints >= 0, got 3$"):
        profiles.parameters("05_imagenet", "quick", {"seeds": 3})
    with pytest.raises(ValueError, match=r"^sparsities: '\[0.5,' is not a Python literal"):
        profiles.parameters("01_convergence", "quick", {"sparsities": "[0.5,"})


def message(notebook: str, given: dict) -> str:
    with pytest.raises(ValueError) as error:
        profiles.parameters(notebook, "quick", given)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_the_three_bad_cases_of_the_issue_give_one_line_naming_the_parameter():
    assert message("01_convergence", {"steps": -5}) == "steps: must be an int >= 1, got -5"
    assert message("01_convergence", {"seeds": "[]"}) == "seeds: must be a non-empty list of distinct ints >= 0, got []"
    assert message("01_convergence", {"stepz": 100}) == (
        "stepz: not a parameter of 01_convergence (did you mean 'steps'?); its parameters are profile, steps, seeds, "
        "sparsities, lr0, rho0, batch_size, update_every, num_samples, n_points, dim, data_seed")


def test_types_ranges_choices_and_lists_are_checked():
    assert message("01_convergence", {"steps": 2.5}) == "steps: must be an int >= 1, got 2.5"
    assert message("01_convergence", {"steps": True}) == "steps: must be an int >= 1, got True"
    assert message("01_convergence", {"lr0": 0}) == "lr0: must be a float > 0, got 0"
    assert message("01_convergence", {"lr0": float("nan")}) == "lr0: must be a float > 0, got nan"
    assert message("01_convergence", {"sparsities": [0.5, 1.0]}) == (
        "sparsities: must be a non-empty list of distinct floats in [0, 1), got [0.5, 1.0]")
    assert message("01_convergence", {"seeds": [0, 0]}).startswith("seeds: must be a non-empty list of distinct")
    assert message("02_masks", {"device": "gpu"}) == "device: must be one of 'cpu', 'cuda', got 'gpu'"
    assert message("03_cifar_accuracy", {"amp": "bf32"}) == "amp: must be one of 'off', 'bf16', 'fp16', got 'bf32'"
    assert message("03_cifar_accuracy", {"train_missing": "yes"}) == "train_missing: must be True or False, got 'yes'"
    assert message("03_cifar_accuracy", {"weight_decay": -1.0}) == (
        "weight_decay: must be a float >= 0, or None, got -1.0")
    assert message("03_cifar_accuracy", {"patterns": "[]"}).startswith("patterns: must be a non-empty list")
    assert message("06_landscape", {"line_points": 1}) == "line_points: must be an int >= 2, got 1"
    assert message("06_landscape", {"store": 3}) == "store: must be a string, got 3"
    assert message("07_claims", {"steps": 5}) == "steps: not a parameter of 07_claims; its parameters are profile"


def test_allowed_values_pass_and_are_normalised():
    p = profiles.parameters("01_convergence", "quick", {"lr0": 2, "seeds": "(4, 5)", "steps": 10})
    assert p.lr0 == 2.0 and isinstance(p.lr0, float) and p.seeds == [4, 5] and p.steps == 10
    p = profiles.parameters("03_cifar_accuracy", "cpu-study", {"cost_sparsities": "[]", "weight_decay": 5e-4})
    assert p.cost_sparsities == [] and p.weight_decay == 5e-4 and p.width == 8
    assert profiles.parameters("03_cifar_accuracy", "quick", {"width": None}).width is None  # the code's default
    for notebook, by_profile in profiles.table().items():  # every profile passes its own rules
        for profile, values in by_profile.items():
            assert vars(profiles.parameters(notebook, profile, {})) == {"profile": profile, **values}


def test_rules_take_the_kind_from_the_profiles_and_the_rest_from_the_file(tmp_path):
    rules = profiles.rules("03_cifar_accuracy")
    assert list(rules)[0] == "profile" and set(rules) == {"profile", *profiles.table()["03_cifar_accuracy"]["quick"]}
    assert rules["width"] == profiles.Rule("width", "int", nullable=True, low=1.0)
    assert rules["cost_sparsities"] == profiles.Rule("cost_sparsities", "float", many=True, empty=True, distinct=True,
                                                     low=0.0, high=1.0, high_open=True)
    assert rules["lr"].kind == "float" and rules["store"].kind == "str" and rules["train_missing"].kind == "bool"
    bad = tmp_path / "profiles.yaml"
    bad.write_text("nb:\n  quick: {a: null}\n  cpu-study: {a: null}\n  paper: {a: null}\n")
    with pytest.raises(ValueError, match="^a: nb's profiles give it no value; state its type"):
        profiles.rules("nb", bad)
    bad.write_text("nb:\n  quick: {a: 1}\n  cpu-study: {a: 0}\n  paper: {a: 2}\n  rules: {a: '>= 1'}\n")
    with pytest.raises(ValueError, match=r"^a: must be an int >= 1, got 0 \(the 'cpu-study' profile of nb\)$"):
        profiles.rules("nb", bad)
    bad.write_text("nb:\n  quick: {a: 1}\n  cpu-study: {a: 1}\n  paper: {a: 1}\n  rules: {a: 'at least 1'}\n")
    with pytest.raises(ValueError, match="^a: the range 'at least 1' must read like"):
        profiles.rules("nb", bad)
    bad.write_text("nb:\n  quick: {a: 1}\n  cpu-study: {a: 1}\n  paper: {a: 1}\n  rules: {a: '>= one'}\n")
    with pytest.raises(ValueError, match="^a: the range '>= one' must read like"):
        profiles.rules("nb", bad)
    bad.write_text("nb:\n  quick: {a: 1}\n  cpu-study: {a: 1}\n  paper: {a: 1}\n  rules: {b: '>= 1'}\n")
    with pytest.raises(ValueError, match="^b: nb's rules name a parameter no profile has"):
        profiles.rules("nb", bad)


def test_check_parameters_and_the_names_a_notebook_was_given():
    declared = {"profile": profiles.Rule("profile", "str", choices=profiles.PROFILES),
                "k": profiles.Rule("k", "int", low=0, high=3, high_open=False)}
    assert profiles.check_parameters(declared, {"k": 3, "profile": "paper"}) == {"k": 3, "profile": "paper"}
    assert profiles.check_parameters(declared, {"k": None}) == {"k": None}  # None: the profile's value
    with pytest.raises(ValueError, match=r"^k: must be an int in \[0, 3\], got 4$"):
        profiles.check_parameters(declared, {"k": 4})
    with pytest.raises(ValueError, match="^kk: not a parameter of this notebook \\(did you mean 'k'\\?\\)"):
        profiles.check_parameters(declared, {"kk": 1})
    namespace = {"In": [], "Out": {}, "_": 1, "__name__": "__main__", "get_ipython": print, "profiles": profiles,
                 "profile": "quick", "stepz": 100, "seeds": "[]", "table": profiles.table}
    assert profiles.given_values(namespace) == {"profile": "quick", "stepz": 100, "seeds": "[]"}


def test_parameter_table_has_one_row_per_parameter():
    p = profiles.parameters("08_cpu_study", "quick", {"resamples": 10})
    table = profiles.parameter_table(p)
    assert list(table.columns) == ["parameter", "value"] and list(table["parameter"]) == list(vars(p))
    assert table.set_index("parameter").loc["resamples", "value"] == "10"


def test_study_note():
    assert profiles.study_note("quick", 3, 3) == ""
    assert "2 of 5" in profiles.study_note("quick", 2, 5)
    assert profiles.study_note("cpu-study", 0, 5).startswith("No study records yet")
    assert "2 of 5" in profiles.study_note("cpu-study", 2, 5) and "does not pre-register" in profiles.study_note(
        "cpu-study", 2, 5)


def test_the_book_root_is_found_from_any_folder_of_the_book_and_nowhere_else(tmp_path, monkeypatch):
    from conftest import REPO

    for start in (REPO, REPO / "notebooks", REPO / "results" / "study"):
        monkeypatch.chdir(start)
        assert layout.book_root() == REPO
    assert layout.book_root(REPO / "book") == REPO
    (tmp_path / "_toc.yml").write_text("")  # a _toc.yml without notebooks/profiles.yaml is not the book
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no book root"):
        layout.book_root()
    with pytest.raises(FileNotFoundError, match="no book root"):
        profiles.table()  # the defaults are resolved at the call, from the current directory
    raw = yaml.safe_load((REPO / layout.PROFILES_FILE).read_text())
    assert profiles.table(REPO / layout.PROFILES_FILE) == {
        notebook: {name: entry[name] for name in profiles.PROFILES if name in entry} for notebook, entry in raw.items()}
