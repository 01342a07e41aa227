"""Peer `fastapi`: the tasks table of bench/crudbench on FastAPI + SQLAlchemy 2,
served by uvicorn, written the way FastAPI's SQL tutorial teaches: sync
endpoints (Starlette runs them in its thread pool), a Session per request
from a `get_db` dependency, the ORM, Pydantic models for bodies and answers.

Same table, indexes and operations as apiphant's generated read, list (a
page of 20 and one row more for has_more, sorted; no count, as apiphant's
list without "total") and create, on the same POST paths and JSON
bodies, so that bench/crud.py's wrk scripts load both. SQLite gets the
pragmas apiphant sets (WAL, synchronous NORMAL, busy_timeout): the same
durability, not the tutorial's rollback journal.

Run from bench/.venv (never the repo's venv):
    APIPHANT_BENCH_DATABASE_URL=sqlite:////tmp/x.sqlite3 \\
        bench/.venv/bin/uvicorn fastapi_crud:app --app-dir bench/peers --port 8000 --no-access-log
"""
import datetime
import os
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, DateTime, Index, Integer, String, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

URL = os.environ['APIPHANT_BENCH_DATABASE_URL']
if URL.startswith('postgresql://'):
    URL = 'postgresql+psycopg://' + URL[len('postgresql://'):]

if URL.startswith('sqlite'):
    engine = create_engine(URL, connect_args={'check_same_thread': False})

    @event.listens_for(engine, 'connect')
    def pragmas(connection, record):
        for pragma in ('PRAGMA journal_mode = WAL', 'PRAGMA synchronous = NORMAL', 'PRAGMA busy_timeout = 5000'):
            connection.execute(pragma).fetchall()
else:
    engine = create_engine(URL)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = 'tasks'
    __table_args__ = (Index('ix_tasks_is_completed_spent_time', 'is_completed', 'spent_time'),
                      {'sqlite_autoincrement': True})
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), 'sqlite'), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger())
    title: Mapped[str] = mapped_column(String(200))
    is_completed: Mapped[bool] = mapped_column(default=False)
    spent_time: Mapped[int] = mapped_column(BigInteger(), default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))


Base.metadata.create_all(bind=engine)


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: int
    title: str
    is_completed: bool
    spent_time: int
    created_at: datetime.datetime


class TaskIn(BaseModel):
    title: str
    is_completed: bool = False
    spent_time: int = 0


class ReadIn(BaseModel):
    id: int


class Range(BaseModel):
    ge: Optional[int] = Field(None, alias='$ge')
    lt: Optional[int] = Field(None, alias='$lt')


class Where(BaseModel):
    is_completed: Optional[bool] = None
    spent_time: Optional[Range] = None


class ListIn(BaseModel):
    where: Where = Where()
    sort_by: str = 'id'
    page: int = 1
    page_size: int = 20


class Meta(BaseModel):
    page: int
    page_size: int
    has_more: bool


class ListOut(BaseModel):
    meta: Meta
    data: list[TaskOut]


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


app = FastAPI()


@app.post('/api/v0/tasks/read', response_model=TaskOut)
def read_task(body: ReadIn, db: Session = Depends(get_db)):
    task = db.get(Task, body.id)
    if task is None:
        raise HTTPException(status_code=404, detail='Not Found')
    return task


@app.post('/api/v0/tasks/list', response_model=ListOut)
def list_tasks(body: ListIn, db: Session = Depends(get_db)):
    conditions = []
    if body.where.is_completed is not None:
        conditions.append(Task.is_completed == body.where.is_completed)
    if body.where.spent_time is not None:
        if body.where.spent_time.ge is not None:
            conditions.append(Task.spent_time >= body.where.spent_time.ge)
        if body.where.spent_time.lt is not None:
            conditions.append(Task.spent_time < body.where.spent_time.lt)
    column = getattr(Task, body.sort_by.lstrip('-'))
    order = column.desc() if body.sort_by.startswith('-') else column
    rows = db.scalars(select(Task).where(*conditions).order_by(order, Task.id)
                      .offset((body.page - 1) * body.page_size).limit(body.page_size + 1)).all()
    return {'meta': {'page': body.page, 'page_size': body.page_size, 'has_more': len(rows) > body.page_size},
            'data': rows[:body.page_size]}


@app.post('/api/v0/tasks/create', response_model=TaskOut)
def create_task(body: TaskIn, db: Session = Depends(get_db)):
    task = Task(**body.model_dump(), version=1, created_at=datetime.datetime.now(datetime.timezone.utc))
    db.add(task)
    db.commit()
    db.refresh(task)
    return task
