"""A left-to-right layered layout of a DAG, computed on the server and drawn as SVG.

Each task's layer is the length of the longest path to it from a root (the serialized tasks
come in topological order, so one pass computes it); inside a layer, tasks are ordered by the
mean position of their upstream tasks, which keeps most edges short without a layout library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NODE_WIDTH, NODE_HEIGHT = 170, 26
LAYER_GAP, ROW_GAP = 60, 12
MARGIN = 10


@dataclass(frozen=True)
class Node:
    task_id: str
    label: str
    task_type: str
    x: int
    y: int
    state: str | None
    mapped: bool


@dataclass(frozen=True)
class Edge:
    path: str


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(serialized: dict[str, Any], states: dict[str, str | None]) -> Layout:
    tasks = serialized.get("tasks", [])
    layer: dict[str, int] = {}
    for task in tasks:  # topological order
        ups = [layer[u] for u in task.get("upstream_task_ids", []) if u in layer]
        layer[task["task_id"]] = max(ups) + 1 if ups else 0
    layers: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        layers.setdefault(layer[task["task_id"]], []).append(task)
    row: dict[str, float] = {}
    for number in sorted(layers):
        members = layers[number]
        if number:
            members.sort(key=lambda t: _mean([row[u] for u in t.get("upstream_task_ids", [])
                                              if u in row]))
        for index, task in enumerate(members):
            row[task["task_id"]] = index
    position = {task_id: (MARGIN + layer[task_id] * (NODE_WIDTH + LAYER_GAP),
                          MARGIN + int(row[task_id]) * (NODE_HEIGHT + ROW_GAP))
                for task_id in layer}
    nodes = [Node(t["task_id"], _shorten(t["task_id"]), t.get("task_type", ""),
                  *position[t["task_id"]], states.get(t["task_id"]), bool(t.get("is_mapped")))
             for t in tasks]
    edges = []
    for task in tasks:
        x2, y2 = position[task["task_id"]]
        for upstream in task.get("upstream_task_ids", []):
            if upstream not in position:
                continue
            x1, y1 = position[upstream]
            x1, y1, y2m = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2, y2 + NODE_HEIGHT // 2
            middle = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{middle},{y1} {middle},{y2m} {x2},{y2m}"))
    width = MARGIN * 2 + (max(layer.values(), default=0) + 1) * (NODE_WIDTH + LAYER_GAP)
    height = MARGIN * 2 + max((len(m) for m in layers.values()), default=1) * (
        NODE_HEIGHT + ROW_GAP)
    return Layout(nodes, edges, width, height)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _shorten(task_id: str, limit: int = 24) -> str:
    return task_id if len(task_id) <= limit else task_id[: limit - 1] + "…"
