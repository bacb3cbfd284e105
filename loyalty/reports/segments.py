"""How members moved between lifecycle stages and RFM segments over a date range.

Counts the rows the segment job appends to ``segment_moves`` (one per member,
dimension and run whose stage or segment changed; the first assignment has no
"from"). Scoped like the other member figures: a store is the member's home
(signup) store, a channel the member's join channel; a store manager's scope
always carries their store, so the restriction holds in the query itself.
Times are UTC, the range half-open ``[start, end)``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.members.models import Member, SegmentMove
from loyalty.reports.scope import Scope
from loyalty.segments.rfm import LIFECYCLES, SEGMENTS

# Dimension -> its codes in reading order, with zh / en names.
DIMENSIONS: dict[str, dict[str, tuple[str, str]]] = {"lifecycle": LIFECYCLES, "rfm": SEGMENTS}
DEFINITIONS: dict[str, tuple[str, str]] = {
    "segment_moves": (
        "所选时段内分群计算改变会员生命周期阶段或 RFM 分群的次数（每名会员每次计算每个维度至多一次）。"
        "首次分配（无原分群）记为“新进入”；迁入＝从其他分群转入；迁出＝转到其他分群；净变化＝新进入＋迁入－迁出。"
        "矩阵：行＝原分群，列＝新分群。门店筛选：会员的入会门店；渠道筛选：入会渠道。已注销会员的记录随其删除。",
        "Changes of a member's lifecycle stage or RFM segment made by segment runs in the range (at most one per "
        "member, dimension and run; a member who moved twice counts twice). First = first assignment (no previous "
        "segment); moved in = from another segment; moved out = to another segment; net = first + moved in − "
        "moved out. Matrix: rows = from, columns = to. Store filter: the member's home (signup) store; channel "
        "filter: the join channel. Closed accounts' moves are erased with them.",
    ),
}


def _order(dimension: str, codes: set[str]) -> list[str]:
    """Known codes in reading order, then any unknown ones (an older rule set's) alphabetically."""
    known = list(DIMENSIONS[dimension])
    return known + sorted(codes - set(known))


def move_counts(s: Session, sc: Scope) -> list[tuple[str, str | None, str, int]]:
    """(dimension, from, to, moves) for the moves in the scope; from is None for a first assignment."""
    q = (select(SegmentMove.dimension, SegmentMove.from_value, SegmentMove.to_value, func.count())
         .join(Member, Member.id == SegmentMove.member_id)
         .where(SegmentMove.run_at >= sc.start, SegmentMove.run_at < sc.end)
         .group_by(SegmentMove.dimension, SegmentMove.from_value, SegmentMove.to_value))
    if sc.store_id is not None:
        q = q.where(Member.store_id == sc.store_id)
    if sc.channel:
        q = q.where(Member.join_channel == sc.channel)
    return [(d, f, t, int(n)) for d, f, t, n in s.execute(q)]


def moves(s: Session, sc: Scope) -> dict[str, Any]:
    """Per dimension: the from -> to matrix (non-zero cells) and per segment first / moved in / out / net."""
    counts = move_counts(s, sc)
    out: dict[str, Any] = {"definition": DEFINITIONS["segment_moves"]}
    for dim, names in DIMENSIONS.items():
        cells = {(f, t): n for d, f, t, n in counts if d == dim}
        codes = _order(dim, {t for _, t in cells} | {f for f, _ in cells if f is not None})
        rank = {c: i for i, c in enumerate(codes)}
        matrix = [{"from": f, "to": t, "members": cells[f, t]}
                  for f, t in sorted(cells, key=lambda ft: (-1 if ft[0] is None else rank[ft[0]], rank[ft[1]]))]
        rows = []
        for code in codes:
            first = cells.get((None, code), 0)
            moved_in = sum(n for (f, t), n in cells.items() if t == code and f is not None)
            moved_out = sum(n for (f, _), n in cells.items() if f == code)
            zh, en = names.get(code, (code, code))
            rows.append({"segment": code, "name_zh": zh, "name_en": en, "first": first, "moved_in": moved_in,
                         "moved_out": moved_out, "net": first + moved_in - moved_out})
        out[dim] = {"matrix": matrix, "segments": rows}
    return out
