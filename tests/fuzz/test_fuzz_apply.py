"""The layer applier: any layer, on top of any other, is applied inside its root or refused
with an InvalidArchive or UnpackError naming the entry; nothing outside the root is ever
created, changed or linked to, in either whiteout mode, with or without owners."""

from __future__ import annotations

from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from ctrpy.errors import InvalidArchive, UnpackError
from tests.builders import sha256_digest
from tests.fuzz.strategies import fuzz, layers, tar_streams
from tests.helpers import Sandbox, scratch_dir


@fuzz(150)
@given(
    stack=st.lists(st.one_of(layers(), tar_streams()), min_size=1, max_size=3),
    whiteouts=st.sampled_from(["delete", "overlay"]),
    same_owner=st.booleans(),
)
def test_any_layer_stack_is_applied_inside_the_root_or_refused(
    stack: list[bytes], whiteouts: str, same_owner: bool
) -> None:
    with scratch_dir() as tmp:
        box = Sandbox(Path(tmp))
        for data in stack:
            try:
                result = box.apply(data, whiteouts=whiteouts, same_owner=same_owner, on_warning=lambda _m: None)
            except (InvalidArchive, UnpackError) as e:
                event(f"refused: {type(e).__name__}")
                break
            event("applied")
            assert result.diff_id == sha256_digest(data) and result.size == len(data)
        box.assert_outside_unchanged()
