"""Image records: containerd's validation rules, create/update/tag/label/delete, name lookup."""

from __future__ import annotations

import pytest

from ctrpy import filters
from ctrpy.errors import AlreadyExists, ImageNotFound, InvalidArgument, NotFound
from ctrpy.images import Image, ImageStore
from ctrpy.images import store as store_mod
from ctrpy.metadata.db import Database
from ctrpy.oci import Descriptor
from tests.helpers import raises_naming

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
D1 = "sha256:" + "11" * 32
D2 = "sha256:" + "22" * 32
BUSYBOX = "docker.io/library/busybox:latest"


def img(name: str = BUSYBOX, dgst: str = D1, labels: dict[str, str] | None = None, size: int = 100) -> Image:
    return Image(name, Descriptor(MANIFEST, dgst, size), labels=dict(labels or {}))


@pytest.fixture
def images(db: Database) -> ImageStore:
    return ImageStore(db, "default")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the store's clock tick in visible steps: T1, T2, ... (no sleeping, no timing)."""
    ticks: list[str] = []

    def now() -> str:
        ticks.append(f"2030-01-01T00:00:0{len(ticks) + 1}.000000000Z")
        return ticks[-1]

    monkeypatch.setattr(store_mod, "now", now)
    return ticks


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("image", "message"),
    [
        (img(name=""), "invalid image name"),
        (img(name=" busybox"), "invalid image name"),
        (img(name="busybox "), "invalid image name"),
        (img(name="bad\nname"), "invalid image name"),
        (Image(BUSYBOX, Descriptor("", D1, 100)), "media type"),
        (img(dgst="sha256:1234"), "invalid target digest"),
        (img(dgst="sha256:" + "AB" * 32), "invalid target digest"),
        (img(dgst="sha512:" + "ab" * 64), "invalid target digest"),
        (img(size=0), "size must be greater than 0"),
        (img(size=-1), "size must be greater than 0"),
        (img(labels={"": "v"}), "label key"),
        (img(labels={"k": "v" * 4096}), "4096"),
    ],
)
def test_image_failing_containerd_validation_is_refused(
    images: ImageStore, image: Image, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        images.create(image)
    assert images.list() == []


def test_label_of_exactly_4096_bytes_is_allowed(images: ImageStore) -> None:
    images.create(img(labels={"k": "v" * 4095}))
    assert images.get(BUSYBOX).labels == {"k": "v" * 4095}


def test_name_need_not_be_a_docker_reference(images: ImageStore) -> None:
    images.create(img(name="Any Name: with spaces inside"))
    assert images.names() == ["Any Name: with spaces inside"]


# --------------------------------------------------------------------------- create, get, list
def test_created_image_reads_back(images: ImageStore, clock: list[str]) -> None:
    images.create(img(labels={"a": "1"}))
    got = images.get(BUSYBOX)
    assert got.name == BUSYBOX
    assert (got.target.media_type, got.target.digest, got.target.size) == (MANIFEST, D1, 100)
    assert got.labels == {"a": "1"}
    assert got.created_at == got.updated_at == clock[0]


def test_creating_an_existing_name_already_exists(images: ImageStore) -> None:
    images.create(img())
    with pytest.raises(AlreadyExists):
        images.create(img(dgst=D2))
    assert images.get(BUSYBOX).target.digest == D1


def test_get_of_a_missing_image_is_not_found(images: ImageStore) -> None:
    with pytest.raises(NotFound, match="busybox"):
        images.get(BUSYBOX)


def test_list_is_sorted_by_name(images: ImageStore) -> None:
    for name in ["c:1", "a:1", "b:1"]:
        images.create(img(name=name))
    assert [i.name for i in images.list()] == ["a:1", "b:1", "c:1"]
    assert images.names() == ["a:1", "b:1", "c:1"]


def test_images_are_per_namespace(db: Database) -> None:
    ImageStore(db, "one").create(img())
    assert ImageStore(db, "two").list() == []
    with pytest.raises(NotFound):
        ImageStore(db, "two").get(BUSYBOX)
    ImageStore(db, "two").create(img(dgst=D2))
    assert ImageStore(db, "one").get(BUSYBOX).target.digest == D1


def test_put_all_is_all_or_nothing(images: ImageStore) -> None:
    with pytest.raises(InvalidArgument):
        images.put_all([img(name="good:1"), img(name="bad:1", size=0)])
    assert images.list() == []


# --------------------------------------------------------------------------- update
def test_update_changes_the_target_and_keeps_created_at(images: ImageStore, clock: list[str]) -> None:
    images.create(img())
    images.put_all([Image(BUSYBOX, Descriptor(INDEX, D2, 200))])
    got = images.get(BUSYBOX)
    assert (got.target.media_type, got.target.digest, got.target.size) == (INDEX, D2, 200)
    assert got.created_at == clock[0]
    assert got.updated_at == clock[1]


def test_set_labels_merges_removes_and_keeps_created_at(images: ImageStore, clock: list[str]) -> None:
    images.create(img(labels={"a": "1", "b": "2"}))
    out = images.set_labels(BUSYBOX, {"b": "", "c": "3"})
    assert out.labels == {"a": "1", "c": "3"}
    got = images.get(BUSYBOX)
    assert got.labels == {"a": "1", "c": "3"}
    assert got.created_at == clock[0]
    assert got.updated_at == clock[-1] != clock[0]


def test_set_labels_refuses_an_invalid_label_and_changes_nothing(images: ImageStore) -> None:
    images.create(img(labels={"a": "1"}))
    with pytest.raises(InvalidArgument):
        images.set_labels(BUSYBOX, {"": "x"})
    assert images.get(BUSYBOX).labels == {"a": "1"}


def test_set_labels_of_a_missing_image_is_not_found(images: ImageStore) -> None:
    with pytest.raises(NotFound):
        images.set_labels(BUSYBOX, {"a": "1"})


# --------------------------------------------------------------------------- tag
def test_tag_gives_the_same_target_and_labels_a_new_name(images: ImageStore) -> None:
    images.create(img(labels={"a": "1"}))
    images.tag(BUSYBOX, ["busybox:mine", "busybox:other"])
    for name in ("busybox:mine", "busybox:other"):
        got = images.get(name)
        assert got.target.digest == D1
        assert got.labels == {"a": "1"}
    assert images.get(BUSYBOX).target.digest == D1


def test_tag_onto_an_existing_name_without_force_already_exists(images: ImageStore) -> None:
    images.create(img())
    images.create(img(name="busybox:mine", dgst=D2))
    with raises_naming(AlreadyExists, "busybox:mine"):
        images.tag(BUSYBOX, ["busybox:mine"])
    assert images.get("busybox:mine").target.digest == D2


def test_tag_force_replaces_an_existing_name(images: ImageStore) -> None:
    images.create(img())
    images.create(img(name="busybox:mine", dgst=D2))
    images.tag(BUSYBOX, ["busybox:mine"], force=True)
    assert images.get("busybox:mine").target.digest == D1


def test_tag_of_several_names_is_all_or_nothing(images: ImageStore) -> None:
    images.create(img())
    images.create(img(name="taken:1", dgst=D2))
    with pytest.raises(AlreadyExists):
        images.tag(BUSYBOX, ["new:1", "taken:1"])
    assert images.names() == [BUSYBOX, "taken:1"]


def test_tag_of_a_missing_source_is_not_found(images: ImageStore) -> None:
    with pytest.raises(NotFound):
        images.tag("nothing:here", ["x:1"])
    assert images.list() == []


def test_tag_finds_the_source_by_its_short_name(images: ImageStore) -> None:
    images.create(img())
    images.tag("busybox", ["busybox:mine"])
    assert images.get("busybox:mine").target.digest == D1


# --------------------------------------------------------------------------- resolve, delete
@pytest.mark.parametrize("short", ["busybox", "busybox:latest", "library/busybox", "docker.io/busybox"])
def test_resolve_finds_an_image_by_its_short_name(images: ImageStore, short: str) -> None:
    images.create(img())
    assert images.resolve(short).name == BUSYBOX


def test_resolve_prefers_the_name_exactly_as_given(images: ImageStore) -> None:
    images.create(img())
    images.create(img(name="busybox", dgst=D2))
    assert images.resolve("busybox").target.digest == D2


def test_resolve_does_not_guess_another_tag(images: ImageStore) -> None:
    images.create(img(name="docker.io/library/busybox:1.36"))
    with pytest.raises(NotFound):
        images.resolve("busybox")


def test_resolve_of_a_missing_image_names_it(images: ImageStore) -> None:
    with pytest.raises(NotFound, match="'nothing'"):
        images.resolve("nothing")


def test_delete_removes_the_image_found_by_short_name(images: ImageStore) -> None:
    images.create(img())
    images.create(img(name="other:1"))
    assert images.delete("busybox").name == BUSYBOX
    assert images.names() == ["other:1"]


def test_delete_of_a_missing_image_is_not_found(images: ImageStore) -> None:
    images.create(img())
    with pytest.raises(NotFound):
        images.delete("missing:1")
    assert images.names() == [BUSYBOX]


# --------------------------------------------------------------------------- did you mean
def test_a_missing_image_suggests_the_closest_names(images: ImageStore) -> None:
    images.create(img(name="docker.io/library/debian:bookworm"))
    images.create(img(name="docker.io/me/app:v1"))
    with pytest.raises(ImageNotFound) as info:
        images.resolve("debain")
    assert info.value.suggestions == ["docker.io/library/debian:bookworm"]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("busybox", "docker.io/library/busybox:1.36"),  # the repository, another tag
        ("busybox:1.35", "docker.io/library/busybox:1.36"),
        ("library/busybx:1.36", "docker.io/library/busybox:1.36"),
        ("app:v2", "example.com/team/app:v1"),  # the last path component
        ("example.com/team/ap:v1", "example.com/team/app:v1"),
    ],
)
def test_suggestions_compare_full_familiar_and_repository_forms(images: ImageStore, typed: str, found: str) -> None:
    images.create(img(name="docker.io/library/busybox:1.36"))
    images.create(img(name="example.com/team/app:v1"))
    assert images.closest(typed)[0] == found


def test_nothing_like_the_name_suggests_nothing(images: ImageStore) -> None:
    images.create(img())
    assert images.closest("zzz") == []


def test_suggestions_are_the_best_three_best_first(images: ImageStore) -> None:
    for tag in ("1", "12", "123", "1234", "12345"):
        images.create(img(name=f"docker.io/library/app:{tag}"))
    found = images.closest("app:1234")
    assert len(found) == 3
    assert found[0] == "docker.io/library/app:1234"
    assert "docker.io/library/app:1" not in found


# --------------------------------------------------------------------------- filters
def listed(images: ImageStore, *texts: str) -> list[str]:
    return [i.name for i in images.list(filters.parse_all(texts))]


@pytest.fixture
def three(images: ImageStore) -> ImageStore:
    images.create(img(name="docker.io/library/debian:bookworm", labels={"team": "infra", "a.b": "dots"}))
    images.create(Image("docker.io/me/app:v1", Descriptor(INDEX, D2, 10, {"org.opencontainers.image.ref.name": "v1"})))
    images.create(img(name="other:1", labels={"team": "web"}))
    return images


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("name~=debian", ["docker.io/library/debian:bookworm"]),
        ("name==other:1", ["other:1"]),
        (f"target.digest=={D2}", ["docker.io/me/app:v1"]),
        (f"target.mediatype=={INDEX}", ["docker.io/me/app:v1"]),
        (f"target.mediatype.extra=={INDEX}", ["docker.io/me/app:v1"]),  # containerd looks at the second field only
        ('labels."team"==infra', ["docker.io/library/debian:bookworm"]),
        ("labels.team", ["docker.io/library/debian:bookworm", "other:1"]),
        ("labels.a.b==dots", ["docker.io/library/debian:bookworm"]),
        ('labels."a.b"==dots', ["docker.io/library/debian:bookworm"]),
        ('annotations."org.opencontainers.image.ref.name"==v1', ["docker.io/me/app:v1"]),
        ("labels.team!=infra", ["docker.io/me/app:v1", "other:1"]),
        ("target", []),
        ("size", []),
    ],
)
def test_list_keeps_the_images_a_filter_matches(three: ImageStore, text: str, names: list[str]) -> None:
    assert listed(three, text) == names


def test_list_with_several_filters_keeps_the_images_any_matches(three: ImageStore) -> None:
    assert listed(three, "name~=app", "labels.team==web") == ["docker.io/me/app:v1", "other:1"]


def test_list_with_a_comma_keeps_the_images_all_selectors_match(three: ImageStore) -> None:
    assert listed(three, "labels.team,name~=^docker") == ["docker.io/library/debian:bookworm"]
