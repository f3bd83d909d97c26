"""The registry is the one list: every study it registers has a report section the page shows, every section and
claim belongs to a registered study, every ``needs`` runs earlier, every table and config switch has one owner.
Each rule is checked on the real registry and shown to fail on a planted violation."""
from dataclasses import fields, replace
from pathlib import Path

import pytest

from overopt.config import Config
from overopt.laws import claims as claims_module
from overopt.report import page
from overopt.studies.base import Study, check_order
from overopt.studies.registry import STUDIES

SECTIONS = Path(page.__file__).parent / "sections"
CLAIMS = {name: f for name, f in vars(claims_module).items() if name.endswith("_claims") and callable(f)}


def problems(studies, entries, claim_functions: dict, sections: Path = SECTIONS) -> list[str]:
    """Every way ``studies``, the page's ``entries`` and the claim functions disagree."""
    out = []
    modules = {s.report_module: s.name for s in studies}
    shown = {e.partition(".")[0] for e in entries}
    for s in studies:
        if not (sections / f"{s.report_module}.py").is_file():
            out.append(f"study '{s.name}' has no report section (report/sections/{s.report_module}.py)")
        elif s.report_module not in shown:
            out.append(f"study '{s.name}': the page shows none of its section")
    for e in entries:
        if e.partition(".")[0] not in modules:
            out.append(f"page entry '{e}' names no registered study")
    declared = [f for s in studies for f in s.claims]
    for name, f in claim_functions.items():
        if declared.count(f) != 1:
            out.append(f"claim {name} is declared by {declared.count(f)} studies, not one")
    try:
        check_order(studies)
    except ValueError as e:
        out.append(str(e))
    tables = [t for s in studies for t in s.tables]
    out += [f"table '{t}' is declared by more than one study" for t in sorted({t for t in tables if tables.count(t) > 1})]
    return out


def test_the_registry_the_page_and_the_claims_agree():
    assert problems(STUDIES, page.OPENING + page.ORDER, CLAIMS) == []
    for entry in page.OPENING + page.ORDER:  # each entry resolves to a function of the page
        assert callable(page.part(entry)), entry


def test_planted_violations_are_caught():
    real = page.OPENING + page.ORDER
    no_section = Study("vpg", lambda *a: None, tables=("vpg",))
    assert problems((*STUDIES, no_section), real, CLAIMS) == [
        "study 'vpg' has no report section (report/sections/vpg.py)"]
    assert problems(STUDIES, real + ("vpg",), CLAIMS) == ["page entry 'vpg' names no registered study"]
    assert problems(STUDIES, tuple(e for e in real if e.partition(".")[0] != "draws"), CLAIMS) == [
        "study 'draws': the page shows none of its section"]

    def orphan_claims(t):
        return []
    assert problems(STUDIES, real, {**CLAIMS, "orphan_claims": orphan_claims}) == [
        "claim orphan_claims is declared by 0 studies, not one"]
    swapped = list(STUDIES)
    i, j = [s.name for s in swapped].index("rl"), [s.name for s in swapped].index("monitor")
    swapped[i], swapped[j] = swapped[j], swapped[i]  # the monitor before the RL curves it reads
    assert problems(swapped, real, CLAIMS) == ["study 'monitor' needs ['rl'], which do not run before it"]
    twice = (*STUDIES[:-1], replace(STUDIES[0], name="bon2"), STUDIES[-1])
    assert "table 'bon' is declared by more than one study" in problems(twice, real + ("bon2",), CLAIMS)


def test_check_order_refuses_a_registry_out_of_order():
    a, b = Study("a", lambda *x: None, ()), Study("b", lambda *x: None, (), needs=("a",))
    check_order([a, b])
    with pytest.raises(ValueError, match="study 'b' needs \\['a'\\], which do not run before it"):
        check_order([b, a])


def test_every_config_switch_belongs_to_one_study():
    """A config section with an ``enabled`` switch turns on exactly one registered study (its ``section``); every
    study's section is a section of the config."""
    cfg = Config()
    switches = {f.name for f in fields(cfg) if any(g.name == "enabled" for g in fields(getattr(cfg, f.name)))}
    assert switches == {"rl", "grpo", "daa", "ensemble", "multi", "aif", "active", "monitor", "budget"}
    owners = [s.section for s in STUDIES if s.section]
    assert sorted(owners) == sorted(set(owners)), "a config section serves two studies"
    assert switches <= set(owners), f"switches no study declares: {switches - set(owners)}"
    assert set(owners) <= {f.name for f in fields(Config)}


def test_fits_reads_every_declaring_study_and_runs_last():
    fits = STUDIES[-1]
    assert fits.name == "fits"
    assert set(fits.needs) == {s.name for s in STUDIES[:-1] if s.fits or s.replicates or s.claims}
    assert {"bon", "rl", "daa", "ensembles", "monitor", "draws"} <= set(fits.needs)


def test_a_preset_switches_studies_by_name_and_all_means_every_switch(tmp_path):
    from overopt.config import ConfigError, load_config, switches

    assert set(switches()) == {s.section for s in STUDIES if s.section}
    smoke = load_config("smoke")  # `studies: all`: a study registered with a switch is on in smoke without an edit
    assert all(getattr(smoke, n).enabled for n in switches())
    f = tmp_path / "c.yaml"
    f.write_text("studies: [daa]\nrl:\n  enabled: false\n")
    cfg = load_config("default", str(f))
    assert cfg.daa.enabled and not cfg.rl.enabled  # the file's own keys win over its studies line
    f.write_text("studies: [vpg]\n")
    with pytest.raises(ConfigError, match="config key 'studies' in .* names 'vpg', which is not a study switch"):
        load_config("default", str(f))
