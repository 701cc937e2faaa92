"""The seed's hello endpoint in FastAPI, the stack our users would otherwise
pick; bench/run serves it with uvicorn from Debian's packages."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/api/hello/{name}")
async def hello(name: str):
    return {"message": f"Hello, {name}!"}
