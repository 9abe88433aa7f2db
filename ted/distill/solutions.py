"""The teacher's own solutions: asked once per run, ahead of need, and reused every epoch.

A solution does not depend on the library, so each problem's is asked once, from the start and in
the order the batches need them; it then sits in the first round of the first batch only. At most
`ahead` calls in flight are solutions (`solutions_ahead`), so the batches' own calls are never
starved. Each lands in
`known` (the run state's) as it arrives, so the next checkpoint keeps it and a resumed run never
asks for it again. The chain structuring makes of a solution is kept the same way (`chains`), so
later epochs structure only the student's new traces. `--fresh-teacher-solutions` asks again in
every epoch instead, and structures each new solution again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured
from ted.tasks.base import Problem


def solutions_ahead(concurrency: int, batch_size: int) -> int:
    """Solutions in flight at most: two batches' worth, at least 4, at most half the calls.

    Two batches' worth keep ahead of the batches as long as one solve takes less than two batches (a
    batch is at least two teacher calls in a row); at least 4 for a small batch with a slow thinking
    teacher; and not a hundred at once, whose replies would all land in, and slow down, the first batch."""
    return min(concurrency // 2, max(2 * batch_size, 4))


class TeacherSolutions:
    def __init__(
        self, solve: Callable[[Problem, int], Awaitable[Rollout]], known: dict[str, Rollout], chains: dict[str, str], fresh: bool, ahead: int
    ) -> None:
        self.solve, self.known, self.chains, self.fresh = solve, known, chains, fresh
        self.ahead = asyncio.Semaphore(max(1, ahead))
        self.solving: dict[str, asyncio.Task[Rollout]] = {}

    def start(self, needed: list[Problem]) -> None:
        """Ask for every solution not known yet, in the order of `needed`."""
        if self.fresh:
            return
        for problem in needed:
            if problem.id not in self.known and problem.id not in self.solving:
                self.solving[problem.id] = asyncio.create_task(self._solve_ahead(problem))

    async def _solve_ahead(self, problem: Problem) -> Rollout:
        async with self.ahead:
            solution = await self.solve(problem, 0)  # the seed epoch 0 asks with, per epoch or not
        self.known[problem.id] = solution
        return solution

    async def get(self, problem: Problem, epoch: int) -> Rollout:
        """The run's solution of `problem` (waiting for it if still on its way), or a fresh one."""
        if self.fresh:
            return await self.solve(problem, epoch)
        if problem.id in self.known:
            return self.known[problem.id]
        return await self.solving[problem.id]

    def chain(self, problem: Problem) -> str | None:
        """The structured chain of the run's solution of `problem`, once structuring has made it."""
        return None if self.fresh else self.chains.get(problem.id)

    def keep_chain(self, problem: Problem, structured: Structured) -> None:
        """Keep the teacher's chain from this structuring, if it made one (the first one made is kept)."""
        if not self.fresh and structured.teacher_chained:
            self.chains.setdefault(problem.id, structured.teacher)

    async def stop(self) -> None:
        """Cancel the solutions still on their way (the run ended or failed) and wait for them, so nothing prints after the run."""
        for task in self.solving.values():
            task.cancel()
        await asyncio.gather(*self.solving.values(), return_exceptions=True)
