"""The emotion-wheel mapping: mechanics on a tiny hand-made wheel folder, then the published quirks on the real
AffectGPT files (benchmarks.md §1.3; validation-fixtures.md §1.3, §1.5)."""

import csv

import numpy as np
import pytest

from conftest import shared_fixture
from mepbench.scoring.wheel import REQUIRED_FILES, load_wheels, split_label_list

# benchmarks.md §1.3 "Consequences": ground-truth word → level-1 sector in wheels 1..5 (None = dropped)
PUBLISHED = {
    "happy": ("happy", "happy", "joyful", "joy", "powerful"),
    "joy": ("happy", "happy", "joyful", "joy", "powerful"),
    "angry": ("mad", "angry", "mad", "anger", "mad"),
    "anger": ("mad", "angry", "mad", "anger", "mad"),
    "sad": ("sad",) * 5,
    "sadness": ("sad",) * 5,
    "worried": ("scared", "fearful", "scared", "fear", "scared"),
    "surprise": ("surprised", "surprised", "powerful", "fear", None),
    "disgust": ("disgusted", "disgusted", None, "disgust", None),
    "fear": ("scared", "happy", "joyful", "genius", "joyful"),
    "neutral": (None,) * 5,
}


@pytest.fixture(scope="module")
def wheels():
    return load_wheels(shared_fixture("emotion_wheel"))


def _xlsx(path, header, rows):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    book.save(path)


@pytest.fixture
def tiny_dir(tmp_path):
    """Wheel 1: Good > Happy > {Glad, Cheerful (blank cells inherit)}; Bad > Sad > Glad (read later, so glad → bad).
    Wheels 2-5: Up > Cheerful > Cheerful; Down > Sad > Gloomy. Synonyms: joyful → {glad, cheerful}, pleased → glad,
    unhappy → sad. format.csv: joyful (forms joyfully, "Joyous" upper-case), unhappy (unhappiness), glad, sad."""
    _xlsx(tmp_path / "wheel1.xlsx", ["level1", "level2", "level3"],
          [("Good ", "Happy", "Glad"), (None, None, "Cheerful"), ("Bad", "Sad", "Glad")])
    for k in range(2, 6):
        _xlsx(tmp_path / f"wheel{k}.xlsx", ["level1", "level2", "level3"],
              [("Up", "Cheerful", "Cheerful"), ("Down", "Sad", "Gloomy")])
    header = [c for k in range(1, 9) for c in (f"word_run{k}", f"synonym_run{k}")]
    rows = [["Glad", "[joyful, 'pleased']"] + ["glad", ""] * 7,
            ["cheerful", "joyful"] + ["cheerful", None] * 7,
            ["sad", "unhappy"] + ["sad", "unhappy"] * 7]
    _xlsx(tmp_path / "synonym.xlsx", header, rows)
    with (tmp_path / "format.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["name", "format"], ["joyful", "joyfully,Joyous"], ["unhappy", "unhappiness"],
                          ["glad", ""], ["sad", "sadly"]])
    return tmp_path


def test_split_label_list_follows_upstream_string_to_list():
    assert split_label_list("[calm, confident, positive]") == ["calm", "confident", "positive"]
    assert split_label_list(" ['Happy', \"sad\"] ") == ["Happy", "sad"]
    assert split_label_list("happy") == ["happy"]
    assert split_label_list("[]") == split_label_list("") == split_label_list(None) == []
    assert split_label_list(float("nan")) == []
    assert split_label_list("don't care") == ["don", "t care"]  # quotes split items, as upstream


def test_tiny_wheel_mechanics(tiny_dir):
    w = load_wheels(tiny_dir)
    assert w.sectors == (("good", "bad"),) + (("up", "down"),) * 4  # lower-cased, stripped, first-appearance order
    assert w.level1_maps[0] == {"good": "good", "happy": "good", "glad": "bad", "cheerful": "good",
                                "bad": "bad", "sad": "bad"}  # "glad" listed under both: the later sector wins
    assert w.synonyms["joyful"] == {"glad", "cheerful"} and w.synonyms["glad"] == {"glad"}
    # joyful → base joyful → wheel words {cheerful, glad}; alphabetically first present in wheel 1 is cheerful
    assert w.map_word("joyful", 1) == "good" and w.map_word("joyfully", 1) == "good"
    assert w.map_word("glad", 1) == "bad" and w.map_word("glad", 2) is None  # glad is in no wheel 2 sector
    assert w.map_word("JOYFUL ", 2) == "up"
    assert w.map_word("Joyous", 1) is None  # format.csv forms are not lower-cased upstream, so it never matches
    assert w.map_word("pleased", 1) is None  # a synonym without a format.csv row is not a surface form
    assert w.map_word("unhappiness", 3) == "down"
    assert w.map_labels(["joyful", "sadly", "xyzzy"], 1) == {"good", "bad"}
    assert (w.n_wheel_words, w.n_synonym_keys, w.n_surface_forms) == (9, 6, 8)


def test_real_files_parse_to_the_published_vocabulary(wheels):
    assert (wheels.n_wheel_words, wheels.n_synonym_keys, wheels.n_surface_forms) == (253, 1255, 7386)
    assert wheels.sectors == (("mad", "disgusted", "sad", "happy", "surprised", "scared"),
                              ("fearful", "angry", "disgusted", "sad", "surprised", "happy", "bad"),
                              ("mad", "scared", "joyful", "powerful", "peaceful", "sad"),
                              ("joy", "genius", "anger", "sad", "fear", "disgust"),
                              ("mad", "scared", "sad", "peaceful", "powerful", "joyful"))


def test_real_files_match_upstream_precomputed_maps(wheels):
    """MERTools MER2026 `wheel_mapping.npz` holds upstream's own wheel and synonym maps (its format map is a
    later version and is not compared)."""
    oracle = np.load(shared_fixture("mer_unibench", "MERTools", "MER2026", "MER2026_Track2", "emotion_wheel",
                                    "wheel_mapping.npz"), allow_pickle=True)
    maps, raw = oracle["wheel_map_whole"].item(), oracle["raw_mapping"].item()
    for k in range(5):
        assert wheels.level1_maps[k] == maps[f"wheel{k + 1}"]["level1"]
    assert wheels.synonyms == {word: frozenset(v) for word, v in raw.items()}
    assert wheels.level1_maps[1]["overwhelmed"] == "bad"  # under fearful and bad in wheel 2: the later one


@pytest.mark.parametrize("word", sorted(PUBLISHED))
def test_published_label_table(wheels, word):
    assert tuple(wheels.map_word(word, k) for k in range(1, 6)) == PUBLISHED[word]


def test_happy_is_joyful_in_wheel_3_and_inflections_follow(wheels):
    assert wheels.map_word("happy", 3) == "joyful"
    assert wheels.map_word("happiness", 3) == wheels.map_word("Happy ", 3) == "joyful"
    assert wheels.map_word("angrily", 2) == "angry"


def test_fear_alphabetical_first_quirk(wheels):
    """format.csv lists *fearless* as a form of *fear*, whose synonyms brave / courageous / daring sort before
    fearful / scared; the first one present in the wheel decides, so fear lands in a positive sector in W2-W5."""
    assert "fearless" in wheels.synonyms and "brave" in wheels.synonyms["fearless"]
    assert wheels.map_word("brave", 3) == wheels.map_word("fear", 3) == "joyful"
    assert wheels.map_word("fear", 1) == "scared"  # no brave/courageous/daring in wheel 1
    assert wheels.map_all(["fear"]) == tuple(frozenset({s}) for s in PUBLISHED["fear"])


def test_neutral_and_unknown_words_map_to_nothing(wheels):
    for k in range(1, 6):
        assert wheels.map_labels(["neutral"], k) == frozenset()
        assert wheels.map_labels(["happy", "xyzzy", "", "neutral"], k) == {PUBLISHED["happy"][k - 1]}
    assert wheels.map_text("[neutral, qwerty]") == (frozenset(),) * 5


def test_loaded_once_per_folder(wheels):
    assert load_wheels(shared_fixture("emotion_wheel")) is wheels


def test_missing_folder_says_where_to_get_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)not found.*AffectGPT.*emotion_wheel"):
        load_wheels(tmp_path / "nowhere")


def test_missing_file_is_named(tmp_path):
    source = shared_fixture("emotion_wheel")
    for name in REQUIRED_FILES:
        if name != "synonym.xlsx":
            (tmp_path / name).symlink_to(source / name)
    with pytest.raises(FileNotFoundError, match=r"synonym\.xlsx.*AffectGPT"):
        load_wheels(tmp_path)


def test_malformed_files_are_named(tiny_dir):
    (tiny_dir / "format.csv").write_text("word,forms\nhappy,happily\n")
    with pytest.raises(ValueError, match=r"format\.csv.*'name' and 'format'"):
        load_wheels(tiny_dir)
    (tiny_dir / "wheel3.xlsx").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"wheel3\.xlsx"):
        load_wheels(tiny_dir)
