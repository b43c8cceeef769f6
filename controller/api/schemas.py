"""Request and response bodies of the operator API. Validation errors name the field (FastAPI's
422 ``loc``), and ids that end up in MQTT topics are checked with the protocol's own rule."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from controller.registry.models import ModuleType, Openness, Role
from protocols import codec
from protocols.errors import ProtocolError
from protocols.quantities import QUANTITIES
from protocols.topics import check_id


def _topic_id(v: str) -> str:
    try:
        check_id(v, "id")
    except ProtocolError as e:
        raise ValueError(e.reason) from None
    return v


# The protocol's id rule (protocols.topics.check_id, which runs on the nodes too and so stays a
# loop over characters) as a regular expression for forms: the dashboard reads it from the
# OpenAPI schema into the input's `pattern` (an HTML pattern is compiled with the `v` flag, so
# the `-` in the class is escaped). tests/test_id_rule.py checks both agree.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,31}"
ID_RULE = "1 to 32 letters (A-Z a-z), digits, - or _, starting with a letter or digit"
TopicId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description=ID_RULE,
        json_schema_extra={"pattern": ID_PATTERN},
    ),
    AfterValidator(_topic_id),
]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Level = Annotated[float, Field(ge=0, le=1)]
DbId = Annotated[int, Field(ge=1, le=2**53)]  # keys fit every database
Epoch = Annotated[int, Field(ge=1_577_836_800, le=4_102_444_800)]  # 2020 .. 2100


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- owners --------------------------------------------------------------------------------
class OwnerIn(BaseModel):
    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["municipality", "market", "utility", "research", "other"] = "municipality"
    contact: str | None = Field(None, max_length=200)


class OwnerOut(Out):
    id: int
    slug: str
    name: str
    kind: str
    contact: str | None


# ---- poles and modules ---------------------------------------------------------------------
class PoleIn(BaseModel):
    id: TopicId
    name: str = Field("", max_length=200)
    lat: Lat
    lon: Lon
    address: str | None = Field(None, max_length=300)
    district: str | None = Field(None, max_length=100)
    owner_id: DbId
    profile_id: DbId | None = None


class PolePatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    lat: Lat | None = None
    lon: Lon | None = None
    address: str | None = Field(None, max_length=300)
    district: str | None = Field(None, max_length=100)
    profile_id: DbId | None = None


def _module_attributes(v: dict[str, Any]) -> dict[str, Any]:
    """``quantities``, if given, decides which readings are the module's
    (controller/registry/measures.py): a list of protocol quantity names."""
    qs = v.get("quantities")
    if qs is not None and not (
        isinstance(qs, list) and all(isinstance(q, str) and q in QUANTITIES for q in qs)
    ):
        raise ValueError(f"quantities must be a list of: {', '.join(QUANTITIES)}")
    return v


Attributes = Annotated[dict[str, Any], AfterValidator(_module_attributes)]


class ModuleIn(BaseModel):
    type: ModuleType
    owner_id: DbId
    purpose: str = Field("", max_length=500)
    openness: Openness = "open"
    personal_data: bool = False
    node: TopicId | None = None
    src: TopicId | None = None
    rated_power_w: float | None = Field(None, ge=0, le=5000)
    attributes: Attributes = Field(default_factory=dict)


class ModulePatch(BaseModel):
    purpose: str | None = Field(None, max_length=500)
    openness: Openness | None = None
    personal_data: bool | None = None
    node: TopicId | None = None
    src: TopicId | None = None
    rated_power_w: float | None = Field(None, ge=0, le=5000)
    attributes: Attributes | None = None


class ModuleOut(Out):
    id: int
    pole_id: str
    type: str
    owner_id: DbId
    purpose: str
    openness: str
    personal_data: bool
    node: str | None
    src: str | None
    rated_power_w: float | None
    attributes: dict[str, Any]


class NodeOut(Out):
    id: int
    pole_id: str
    node: str
    hardware_id: str | None
    board: str
    firmware_version: str | None
    status: str
    level: float | None
    last_seen: float | None
    mqtt_username: str
    provisioned_at: float | None
    config_version: int


class PoleOut(Out):
    id: str
    name: str
    lat: float
    lon: float
    address: str | None
    district: str | None
    owner_id: DbId
    profile_id: int | None
    modules: list[ModuleOut]
    nodes: list[NodeOut]


# ---- groups --------------------------------------------------------------------------------
class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    owner_id: DbId | None = None
    profile_id: int | None = None
    poles: list[TopicId] = Field(default_factory=list, max_length=100_000)


class GroupPatch(BaseModel):
    description: str | None = Field(None, max_length=500)
    profile_id: DbId | None = None
    poles: list[TopicId] | None = Field(None, max_length=100_000)


class GroupOut(Out):
    id: int
    name: str
    description: str
    owner_id: int | None
    profile_id: int | None
    poles: list[str] = Field(default_factory=list)


# ---- nodes ---------------------------------------------------------------------------------
class NodeIn(BaseModel):
    pole: TopicId
    node: TopicId = "n1"
    hardware_id: str | None = Field(None, min_length=1, max_length=64)
    board: str = Field("streetpole-esp32-v1", min_length=1, max_length=64)
    replace: bool = Field(
        False,
        description="provision again a node heard in the last minutes (takes it off the broker)",
    )


class Credentials(BaseModel):
    """Shown once: the registry keeps only a hash of the password."""

    node: NodeOut
    mqtt_username: str
    mqtt_password: str
    update_key: str
    broker_url: str
    # node.json's ca and server_name: the CA the node trusts for its mqtts:// broker (PEM), and
    # the name the broker's certificate carries when it is not the URL's host.
    broker_ca: str | None = None
    broker_server_name: str | None = None


# ---- dimming -------------------------------------------------------------------------------
class Step(BaseModel):
    at: str = Field(pattern=r"^(sunrise|sunset|([01][0-9]|2[0-3]):[0-5][0-9])$")
    offset_min: int = Field(0, ge=-720, le=720)
    level: Level


class ProgramIn(BaseModel):
    name: TopicId
    steps: list[Step] = Field(min_length=1, max_length=24)
    # None: the shared library (unscoped accounts); an owner-scoped account's default is its own
    owner_id: DbId | None = None


class ProgramOut(Out):
    id: int
    name: str
    owner_id: int | None
    steps: list[dict[str, Any]]


class Presence(BaseModel):
    level: Level
    hold_s: float = Field(ge=0, le=3600)
    ramp_up_s: float = Field(0, ge=0, le=600)
    ramp_down_s: float = Field(0, ge=0, le=3600)
    neighbour_level: Level | None = None


class NoiseTrigger(BaseModel):
    threshold_dba: float = Field(ge=30, le=130)
    level: Level
    hold_s: float = Field(0, ge=0, le=3600)


class CalendarRule(BaseModel):
    program: TopicId
    dates: list[Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]] | None = None
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    from_: str | None = Field(None, alias="from", pattern=r"^\d{2}-\d{2}$")
    to: str | None = Field(None, pattern=r"^\d{2}-\d{2}$")

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _range(self) -> CalendarRule:
        if (self.from_ is None) != (self.to is None):
            raise ValueError("from and to go together")
        return self


class ProfileIn(BaseModel):
    name: TopicId
    owner_id: DbId | None = None  # as for programs
    default_program: TopicId
    calendar: list[CalendarRule] = Field(default_factory=list, max_length=64)
    min_level: Level = 0.0
    max_level: Level = 1.0
    safe_level: Level | None = None
    presence: Presence | None = None
    noise_trigger: NoiseTrigger | None = None
    report_period_s: int = Field(60, ge=10, le=3600)
    tz: str = Field("CET-1CEST,M3.5.0,M10.5.0/3", min_length=3, max_length=64)
    neighbour_radius_m: float = Field(60.0, ge=0, le=1000)

    @field_validator("max_level")
    @classmethod
    def _levels(cls, v: float, info: ValidationInfo) -> float:
        # a field validator, so the 422 names max_level (a model validator's error has no field)
        low = info.data.get("min_level")
        if low is not None and v < low:
            raise ValueError("must not be below min_level")
        return v

    def stored(self) -> dict[str, Any]:
        d = self.model_dump(exclude_none=True)
        d["calendar"] = [r.model_dump(by_alias=True, exclude_none=True) for r in self.calendar]
        return d


class ProfileOut(Out):
    id: int
    name: str
    owner_id: int | None
    default_program: str
    calendar: list[dict[str, Any]]
    min_level: float
    max_level: float
    safe_level: float | None
    presence: dict[str, Any] | None
    noise_trigger: dict[str, Any] | None
    report_period_s: int
    tz: str
    neighbour_radius_m: float


class ConfigStatus(Out):
    node_id: int
    version: int
    status: str
    reason: str | None
    pushed_at: float
    acked_at: float | None


# ---- overrides and commands ----------------------------------------------------------------
class Area(BaseModel):
    bbox: tuple[Lon, Lat, Lon, Lat] | None = None  # west, south, east, north
    polygon: list[tuple[Lon, Lat]] | None = Field(None, min_length=4, max_length=1000)

    @model_validator(mode="after")
    def _one(self) -> Area:
        if (self.bbox is None) == (self.polygon is None):
            raise ValueError("give exactly one of bbox and polygon")
        if self.bbox is not None and (self.bbox[0] > self.bbox[2] or self.bbox[1] > self.bbox[3]):
            raise ValueError("bbox is west, south, east, north")
        if self.polygon is not None and self.polygon[0] != self.polygon[-1]:
            raise ValueError("polygon ring must be closed (first point == last point)")
        return self


class OverrideIn(BaseModel):
    pole: TopicId | None = None
    group: DbId | None = None
    area: Area | None = None
    level: Level = 1.0
    start: Epoch | None = None
    expiry: Epoch | None = None
    duration_s: int | None = Field(None, ge=1, le=30 * 86400)
    mode: Literal["normal", "event"] = "normal"
    reason: str = Field("", max_length=300)

    @model_validator(mode="after")
    def _target(self) -> OverrideIn:
        if sum(x is not None for x in (self.pole, self.group, self.area)) != 1:
            raise ValueError("give exactly one target: pole, group or area")
        if self.expiry is not None and self.duration_s is not None:
            raise ValueError("give expiry or duration_s, not both")
        return self


def _unsigned(payload: dict[str, Any]) -> dict[str, Any]:
    """A command as the API shows it: without the signature of an update, which is of use to
    nobody but the node it was sent to."""
    return {k: v for k, v in payload.items() if k != "sig"}


class CommandOut(Out):
    id: str
    node_id: int
    kind: str
    payload: Annotated[dict[str, Any], AfterValidator(_unsigned)]
    status: str
    reason: str | None
    result: dict[str, Any] | None
    override_id: str | None
    campaign_id: int | None
    created_by: str
    created_at: float
    acked_at: float | None


class OverrideOut(Out):
    id: str
    target_kind: str
    target: dict[str, Any]
    level: float
    start: int
    expiry: int | None
    mode: str
    reason: str
    created_by: str
    created_at: float
    reverted_at: float | None
    active: bool = False
    nodes: int = 0


class CommandIn(BaseModel):
    cmd: Literal["reboot", "selftest", "revert"]


class RollbackIn(BaseModel):
    package_id: DbId


# ---- firmware ------------------------------------------------------------------------------
class PackageOut(Out):
    id: int
    version: str
    sha256: str
    size: int
    url: str
    kind: str  # "image" (whole firmware, A/B slots) or "tree" (.mpy archive, development)
    notes: str
    uploaded_by: str
    created_at: float


class CampaignIn(BaseModel):
    package_id: DbId
    group_id: int
    nodes_per_minute: float = Field(10.0, gt=0, le=10_000)
    failure_threshold: float = Field(0.2, ge=0, le=1)
    min_finished: int = Field(3, ge=1, le=10_000)
    timeout_s: int = Field(1800, ge=10, le=7 * 86400)


class CampaignOut(Out):
    id: int
    package_id: DbId
    group_id: int
    nodes_per_minute: float
    failure_threshold: float
    min_finished: int
    timeout_s: int
    state: str
    halted_reason: str | None
    created_by: str
    created_at: float
    nodes: dict[str, int] = Field(default_factory=dict)


class CampaignNodeOut(Out):
    node_id: int
    state: str
    command_id: str | None
    reason: str | None
    updated_at: float


# ---- alarms, users, audit ------------------------------------------------------------------
class AlarmOut(Out):
    id: int
    pole_id: str
    node: str | None
    module_id: int | None
    code: str
    src: str
    severity: str
    state: str
    detail: str
    count: int
    raised_at: float
    updated_at: float
    acknowledged_by: str | None
    acknowledged_at: float | None
    cleared_by: str | None
    cleared_at: float | None


class UserIn(BaseModel):
    username: TopicId
    password: str = Field(min_length=10, max_length=200)
    role: Role
    owner_id: DbId | None = None


class UserOut(Out):
    id: int
    username: str
    role: str
    owner_id: int | None
    active: bool


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: float | None = None


class AuditOut(Out):
    id: int
    ts: float
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]


def check_config(cfg: dict[str, Any]) -> None:
    """Raise ValueError with the protocol's reason if a compiled config would be refused."""
    try:
        codec.check("config", cfg)
    except ProtocolError as e:
        raise ValueError(str(e)) from None
