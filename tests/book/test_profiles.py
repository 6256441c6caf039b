"""Notebook profiles (sparsam.book.profiles): consistent defaults, overrides, and errors that name the parameter."""

from __future__ import annotations

import pytest
import yaml

from sparsam.book import profiles


def test_every_notebook_has_the_three_profiles_with_the_same_parameters_and_seed_lists():
    table = profiles.table()
    assert set(table) == {"01_convergence", "02_masks", "03_cifar_accuracy", "04_efficiency", "05_imagenet",
                          "06_landscape", "07_claims", "08_cpu_study"}
    for notebook, by_profile in table.items():
        assert tuple(by_profile) == profiles.PROFILES, notebook
        names = [set(values) for values in by_profile.values()]
        assert all(n == names[0] for n in names), notebook
        for values in by_profile.values():
            if notebook == "07_claims":  # it trains nothing: no parameter besides the profile
                assert values == {}
                continue
            if notebook == "08_cpu_study":  # it reads the pre-registered study, whose file names the seeds
                assert values == by_profile["quick"] and values["study_file"] == "results/study/cpu_study.yaml"
                continue
            assert isinstance(values["seeds"], list) and all(isinstance(s, int) for s in values["seeds"])


def test_none_takes_the_profile_value_and_a_given_value_wins():
    quick = profiles.table()["03_cifar_accuracy"]["quick"]
    p = profiles.parameters("03_cifar_accuracy", "quick", {"epochs": None, "seeds": "[0, 1, 2]", "lr": 0.1})
    assert p.profile == "quick" and p.epochs == quick["epochs"] and p.seeds == [0, 1, 2] and p.lr == 0.1
    paper = profiles.parameters("03_cifar_accuracy", "paper", {})
    assert paper.epochs == 200 and paper.model == "resnet18" and len(paper.seeds) >= 3


def test_bad_profile_notebook_or_seeds_are_refused_by_name():
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.parameters("03_cifar_accuracy", "fast", {})
    with pytest.raises(ValueError, match="notebook must be one of"):
        profiles.parameters("07_nothing", "quick", {})
    with pytest.raises(ValueError, match="seeds must be a list"):
        profiles.parameters("05_imagenet", "quick", {"seeds": 3})
    with pytest.raises(ValueError, match="sparsities="):
        profiles.parameters("01_convergence", "quick", {"sparsities": "[0.5,"})


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
        assert profiles.book_root() == REPO
    assert profiles.book_root(REPO / "book") == REPO
    (tmp_path / "_toc.yml").write_text("")  # a _toc.yml without notebooks/profiles.yaml is not the book
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no book root"):
        profiles.book_root()
    with pytest.raises(FileNotFoundError, match="no book root"):
        profiles.table()  # the defaults are resolved at the call, from the current directory
    assert profiles.table(REPO / profiles.PROFILES_FILE) == yaml.safe_load((REPO / profiles.PROFILES_FILE).read_text())
