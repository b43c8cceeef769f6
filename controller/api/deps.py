"""Dependencies shared by the routes (Annotated, FastAPI-template style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from controller.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.streetpole
    return state


State = Annotated[AppState, Depends(get_state)]
