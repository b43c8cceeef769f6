"""The controller's operator API as the field tools use it, with the usual failures named."""

from __future__ import annotations

from typing import Any

import httpx

from fieldtools.errors import FieldError


class Controller:
    def __init__(self, url: str, token: str | None, timeout: float = 15.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise FieldError("usage", f"controller URL {url!r} must start with http:// or https://")
        if not token:
            raise FieldError(
                "usage",
                "no API token",
                "pass --token or set STREETPOLE_TOKEN (an operator makes one: "
                "`streetpole create-token <you> --name field`)",
            )
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, ok404: bool = False, **kw: Any) -> Any:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise FieldError(
                "controller",
                f"the controller at {self.url} did not answer in time",
                "check the laptop's network (mobile hotspot?) and the controller URL",
            ) from None
        except httpx.TransportError as e:
            raise FieldError(
                "controller",
                f"cannot reach the controller at {self.url} ({type(e).__name__}: {e})",
                "check the laptop's network (VPN, hotspot) and --controller / "
                "STREETPOLE_CONTROLLER_URL; nothing was changed on the node",
            ) from None
        if r.status_code == 404 and ok404:
            return None
        if r.status_code == 401:
            raise FieldError(
                "controller",
                "the controller refused the API token (missing, expired or revoked)",
                "ask an operator for a new token (`streetpole create-token`)",
            )
        if r.status_code == 403:
            raise FieldError("controller", f"{method} {path}: not allowed: {_detail(r)}")
        if r.status_code >= 400:
            raise FieldError("controller", f"{method} {path}: {r.status_code} {_detail(r)}")
        return r.json() if r.content else None

    def me(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", "/api/auth/me")
        return out


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json().get("detail", r.text)
    except ValueError:
        return r.text[:200]
    if isinstance(d, list):  # pydantic: [{"loc": [...], "msg": ...}]
        return "; ".join(
            ".".join(str(x) for x in e.get("loc", [])[1:]) + ": " + str(e.get("msg", ""))
            for e in d
            if isinstance(e, dict)
        )
    return str(d)
