"""Dependencies shared by the routes (Annotated, FastAPI-template style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from controller.state import AppState


async def get_state(request: Request) -> AppState:
    # async: a plain attribute read needs no trip through the thread pool
    state: AppState = request.app.state.streetpole
    return state


State = Annotated[AppState, Depends(get_state)]
