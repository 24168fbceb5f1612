"""The house rules: stages import one way (core <- engines <- ingest <- features <- models <- deliver),
nothing but the CLI imports synth, and no module imports itself back through others. Function-level
(lazy) imports count as imports."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Stage of each package, lowest first; a module may import its own stage and those below it.
STAGES = [
    ("pipelines.core", 0),
    ("pipelines.engines", 1),
    ("pipelines.ingest", 2),
    ("pipelines.features", 3),
    ("models", 4),
    ("pipelines.deliver", 5),
    ("pipelines.steps", 6),  # the step list: names the steps of every stage
    ("pipelines.synth", 7),  # generator, Bayes reference, demo, benchmark: may use everything
    ("pipelines.cli", 8),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> int | None:
    for prefix, rank in STAGES:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def import_graph() -> dict[str, set[str]]:
    """Return {module: modules of this repo it imports}, for pipelines/ and models/."""
    files = sorted([*(REPO / "pipelines").rglob("*.py"), *(REPO / "models").rglob("*.py")])
    known = {_module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
                target = node.value.split(":")[0]  # "module:function" step targets
                if target in known:
                    found.add(target)
        graph[name] = {m for m in found if m in known and m != name}
    return graph


def test_every_module_belongs_to_a_stage():
    assert [m for m in import_graph() if _stage(m) is None and m not in ("pipelines", "models")] == []


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Return the imports that point to a higher stage, or into synth from anything but synth and the CLI."""
    return sorted(
        f"{module} -> {target}"
        for module, imported in graph.items()
        for target in imported
        if _stage(target) > _stage(module)
        or (target.startswith("pipelines.synth") and _stage(module) < _stage("pipelines.synth"))
    )


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """Return one import cycle, or [] without any."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        return list(err.args[1])
    return []


def test_stages_import_one_way_and_nothing_but_the_cli_imports_synth():
    assert wrong_way(import_graph()) == []


def test_no_import_cycles():
    assert cycle(import_graph()) == []


def test_the_checks_can_fail():
    graph = import_graph()
    graph["pipelines.core.config"] = graph["pipelines.core.config"] | {"pipelines.deliver.alerts"}
    graph["models.training"] = graph["models.training"] | {"pipelines.synth.generate"}
    assert wrong_way(graph) == [
        "models.training -> pipelines.synth.generate",
        "pipelines.core.config -> pipelines.deliver.alerts",
    ]
    assert "pipelines.core.config" in cycle(graph)


def test_column_lists_in_code_name_columns_the_ddl_declares():
    """The DDL is the one schema: every list of table columns in code is checked against it."""
    from models.btyd import SUMMARY_COLUMNS
    from models.scoring import SCORE_COLUMNS
    from models.training import RFM_FEATURES, SQL_FEATURES
    from pipelines.core.warehouse import declared_names
    from pipelines.deliver.alerts import FEATURE_COLUMNS

    features = set(declared_names("customer_features"))
    for name, columns in [
        ("SQL_FEATURES", SQL_FEATURES),
        ("RFM_FEATURES", RFM_FEATURES),
        ("FEATURE_COLUMNS", FEATURE_COLUMNS),
        ("SUMMARY_COLUMNS", SUMMARY_COLUMNS),
    ]:
        assert [c for c in columns if c not in features] == [], name
    assert SCORE_COLUMNS == declared_names("churn_scores")


def test_each_step_is_the_function_of_its_name_in_its_stage():
    """One hop from a task to its code: step validate_data is pipelines.ingest.validation.validate_data."""
    from pipelines.steps import STEPS

    for name, step in STEPS.items():
        module, func = step.target.split(":")
        assert func == name and _stage(module) is not None and _stage(module) < _stage("pipelines.steps"), name
        assert callable(step.function()), name
