"""The roles of a study file's panels (sde.studyfile.ROLES): which panel a figure takes, checked as the file loads and
against the results before anything is drawn or run, and a figure drawn the same whatever the ids of its panels."""

import filecmp
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from runtools.schema import ConfigError
from sde.studyfile import load_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_DIR = os.path.join(ROOT, "experiments", "weak_convergence")
RESULTS = os.path.join(ROOT, "results", "weak_convergence")


def test_the_committed_study_files_give_every_role_a_figure_takes():
    from sde.studyfile import ROLES, STUDIES
    studies = {n: load_study(os.path.join(STUDY_DIR, f"{n}.yaml")) for n in STUDIES}
    for role, r in ROLES.items():
        assert studies[r.study].with_role(role).kind == r.kind


def _study_copy(tmp_path, name, edit):
    text = open(os.path.join(STUDY_DIR, f"{name}.yaml")).read()
    new = edit(text)
    assert new != text
    p = tmp_path / f"{name}.yaml"
    p.write_text(new)
    return str(p)


# every panel that has a role, renamed (study -> old id -> new id)
ROLE_PANEL_RENAMES = {"multiplier": {"smooth_shape": "smooth_m", "alpha_mmax": "sensitivity"},
                      "theorem_pgpo": {"quadratic": "quadratic_clipped"},
                      "trajectories": {"quadratic": "quadratic_path"}}


def test_a_figure_finds_its_panel_by_role_whatever_its_id(tmp_path):
    """fig4 takes its four panels by role (sde.report.StudyResults.with_role): with every panel that has a role
    renamed, consistently in the study files and in the results, it is drawn byte for byte as from the committed files. Only the
    files of the studies that give roles are read (--studies holds nothing else)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    from sde.figures.multiplier import fig_multiplier
    from sde.report import StudyResults, load
    from sde.studyfile import ROLE_STUDIES, ROLES
    assert set(ROLE_PANEL_RENAMES) == set(ROLE_STUDIES)
    studies, results, out = tmp_path / "studies", tmp_path / "results", tmp_path / "figures"
    for d in (studies, results, out):
        d.mkdir()
    for path in glob.glob(os.path.join(RESULTS, "*.json")):             # every study: the verdicts are one family
        shutil.copy(path, results)
    for name, renames in ROLE_PANEL_RENAMES.items():
        text = open(os.path.join(STUDY_DIR, f"{name}.yaml")).read()
        for old, new in renames.items():
            assert text.count(f"  - id: {old}\n") == 1
            text = text.replace(f"  - id: {old}\n", f"  - id: {new}\n")
        (studies / f"{name}.yaml").write_text(text)
        doc = json.loads((results / f"{name}.json").read_text())
        for p in doc["panels"]:
            if p["id"] in renames:
                p["id"] = p["spec"]["id"] = renames[p["id"]]
                for item in p["items"]:
                    item["panel"] = p["id"]
        (results / f"{name}.json").write_text(json.dumps(doc))
    res = StudyResults(load(str(results)), str(results), str(studies))
    assert {role: res.with_role(role)["id"] for role in ROLES} == {
        "smooth_shape": "smooth_m", "sensitivity_sweep": "sensitivity", "clipped_shape": "quadratic_clipped",
        "multiplier_path": "quadratic_path"}
    written = []
    fig_multiplier(res, "multiplier", str(out), written)
    assert str(out / "fig4_multiplier.png") in written
    # the same figure from the committed study files and results, drawn here by the same matplotlib (PNG bytes
    # depend on its version: the committed PNG is compared where the committed figures are regenerated)
    same = tmp_path / "as_committed"
    same.mkdir()
    fig_multiplier(StudyResults(load(RESULTS), RESULTS, STUDY_DIR), "multiplier", str(same), [])
    assert filecmp.cmp(out / "fig4_multiplier.png", same / "fig4_multiplier.png", shallow=False)


def test_a_role_is_none_only_without_its_studys_results():
    """with_role: None when the role's study has no results; a role that ROLES does not declare is a figure's bug,
    raised with the roles there are."""
    from sde.report import StudyResults
    with open(os.path.join(RESULTS, "multiplier.json")) as f:
        docs = {"multiplier": json.load(f)}
    res = StudyResults(docs, RESULTS)
    assert res.with_role("smooth_shape")["id"] == "smooth_shape"
    assert res.with_role("clipped_shape") is None and res.with_role("multiplier_path") is None
    with pytest.raises(KeyError, match=r"no role 'smooth_shapes'; the roles are smooth_shape, sensitivity_sweep, "
                                       r"clipped_shape, multiplier_path"):
        res.with_role("smooth_shapes")


def test_results_record_each_panels_spec_without_its_role():
    """`role` says what the report draws and changes no number: a panel's stored spec leaves it out, and the committed
    results of the studies that give roles hold exactly their study files' specs (so a rerun keeps them)."""
    from sde.study import comparable_spec, panel_spec
    from sde.studyfile import ROLE_STUDIES
    p = load_study(os.path.join(STUDY_DIR, "multiplier.yaml")).panels[0]
    assert p.role == "smooth_shape" and "role" not in panel_spec(p) and "role" not in comparable_spec(p)
    assert {"multiplier", "theorem_pgpo", "trajectories"} == set(ROLE_STUDIES)
    for name in ("multiplier", "theorem_pgpo"):       # trajectories.json predates MultiplierSpec.constant in its specs
        with open(os.path.join(RESULTS, f"{name}.json")) as f:
            doc = json.load(f)
        study = load_study(os.path.join(STUDY_DIR, f"{name}.yaml"), quick=doc["quick"])
        assert [q["spec"] for q in doc["panels"]] == [comparable_spec(q) for q in study.panels], name


@pytest.mark.parametrize("name, old, new, needle", [
    # no panel has the role a figure takes (the panel deleted, or its role left off): the file fails as it loads
    ("multiplier", "    role: smooth_shape ", "    # role: smooth_shape ",
     r"multiplier\.yaml: no panel has `role: smooth_shape`; give it to the weak_error panel that fig4_multiplier \(a\)"),
    ("trajectories", "  - id: quadratic\n    kind: trajectory\n    role: multiplier_path", "  - id: quadratic\n    kind: trajectory",
     r"trajectories\.yaml: no panel has `role: multiplier_path`"),
    # a misspelt role: the panel is named
    ("theorem_pgpo", "role: clipped_shape", "role: clipped_shapes",
     r"theorem_pgpo\.yaml: panels\[0\]\.role: unknown role 'clipped_shapes'; did you mean 'clipped_shape'\?"),
    # a role on a panel of the wrong kind, or of another study
    ("multiplier", "role: sensitivity_sweep", "role: smooth_shape",
     r"multiplier\.yaml: panels\[1\]\.role: smooth_shape is a weak_error panel's role"),
    ("theorem_pgpo", "role: clipped_shape", "role: smooth_shape",
     r"theorem_pgpo\.yaml: panels\[0\] \(quadratic\)\.role: smooth_shape belongs to study 'multiplier'"),
    # the panel with the role lacks what its figure reads: curves (sde|test) or a multiplier m(I) of the right shape
    ("multiplier", "tests: [sq_norm, fluctuation]\n    etas: [0.1,", "tests: [sq_norm]\n    etas: [0.1,",
     r"multiplier\.yaml: panels\[0\] \(smooth_shape\)\.role: smooth_shape needs the curve\(s\) matched\|fluctuation, "
     r"paper\|fluctuation \(sde\|test; fig4_multiplier \(a\) draws"),
    ("multiplier", "sdes: [matched, paper]\n    tests: [sq_norm, fluctuation]\n    etas: [0.025",
     "sdes: [matched]\n    tests: [sq_norm, fluctuation]\n    etas: [0.025",
     r"multiplier\.yaml: panels\[1\] \(alpha_mmax\)\.role: sensitivity_sweep needs the curve\(s\) paper\|fluctuation "),
    ("multiplier", "sdes: [matched, paper]\n    tests: [sq_norm, fluctuation]\n    etas: [0.025",
     "sdes: [matched, paper]\n    tests: [fluctuation]\n    etas: [0.025",
     r"panels\[1\] \(alpha_mmax\)\.role: sensitivity_sweep needs the curve\(s\) matched\|sq_norm "),
    ("theorem_pgpo",
     "smooth one\n    problem: quadratic\n    discrete: pgpo\n    multiplier: {m_max: 2.5, shape: clipped_linear}",
     "smooth one\n    problem: quadratic\n    discrete: pgpo\n    multiplier: {m_max: 2.5, shape: smooth}",
     r"theorem_pgpo\.yaml: panels\[0\] \(quadratic\)\.role: clipped_shape needs discrete: pgpo with a clipped_linear "
     r"multiplier m\(I\), got multiplier\.shape: smooth \(fig4_multiplier \(a\) draws"),
    ("trajectories", "one of its paths\n    problem: quadratic\n    discrete: pgpo\n    multiplier: {m_max: 2.5}",
     "one of its paths\n    problem: quadratic\n    discrete: pgpo\n    multiplier: {constant: 2.0}",
     r"trajectories\.yaml: panels\[1\] \(quadratic\)\.role: multiplier_path needs discrete: pgpo with a multiplier "
     r"m\(I\), got multiplier\.constant: 2 \(fig4_multiplier \(b\) draws I_k and m_k"),
    ("trajectories", "one of its paths\n    problem: quadratic\n    discrete: pgpo",
     "one of its paths\n    problem: quadratic\n    discrete: sgd",
     r"trajectories\.yaml: panels\[1\] \(quadratic\)\.role: multiplier_path needs discrete: pgpo with a multiplier "
     r"m\(I\), got discrete: sgd "),
])
def test_a_study_file_without_the_panel_a_figure_takes_fails_as_it_loads(tmp_path, name, old, new, needle):
    path = _study_copy(tmp_path, name, lambda t: t.replace(old, new))
    with pytest.raises(ConfigError, match=needle) as e:
        load_study(path)
    assert "\n" not in str(e.value) and path in str(e.value)


def test_results_older_than_a_renamed_panel_are_refused_in_one_line(tmp_path):
    """The report takes fig4's panels by the roles of the study files: a study file whose role-bearing panel was
    renamed since its results were made names both files, before anything is drawn."""
    from sde.report import StudyResults, load
    studies = tmp_path / "studies"
    studies.mkdir()
    for n in ("theorem_pgpo", "trajectories"):
        (studies / f"{n}.yaml").write_text(open(os.path.join(STUDY_DIR, f"{n}.yaml")).read())
    (studies / "multiplier.yaml").write_text(
        open(os.path.join(STUDY_DIR, "multiplier.yaml")).read().replace("id: alpha_mmax", "id: sensitivity"))
    docs = {n: d for n, d in load(RESULTS).items() if n in ("theorem_pgpo", "trajectories", "multiplier")}
    assert StudyResults(docs, RESULTS).with_role("multiplier_path")["id"] == "quadratic"
    with pytest.raises(ConfigError, match=r"multiplier\.json: no panel 'sensitivity', which .*multiplier\.yaml gives "
                                          r"`role: sensitivity_sweep`: rerun the study"):
        StudyResults(docs, RESULTS, str(studies))


def test_the_runner_refuses_kept_results_older_than_a_renamed_panel_before_running(tmp_path):
    """run.py draws the figures from every result in --out after running: kept results whose role-bearing panel the
    study file has renamed since are refused up front, in one line, before any study runs."""
    out = tmp_path / "q"
    out.mkdir()
    doc = json.load(open(os.path.join(RESULTS, "multiplier.json")))
    for p in doc["panels"]:
        if p["id"] == "alpha_mmax":                                   # as if the sweep had another id back then
            p["id"] = p["spec"]["id"] = "sweep_before_rename"
    (out / "multiplier.json").write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, os.path.join(STUDY_DIR, "run.py"), "--quick", "--only", "theorem_sgd",
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert re.search(r"run\.py: error: .*q/multiplier\.json: no panel 'alpha_mmax', which .*multiplier\.yaml gives "
                     r"`role: sensitivity_sweep`: rerun the study", res.stderr), res.stderr
    assert sorted(os.listdir(out)) == ["multiplier.json"]                # nothing ran
