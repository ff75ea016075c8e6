"""A simulated week for `dosewise demo`: the real parts, driven by a simulated clock.

Every few simulated minutes the week runs the scheduler's jobs (SchedulerService, given the
simulated clock), lets the notifier's worker send what is due through the console channel,
and reads the messages back off that channel as the sample people's phones. Each person's
habit decides their answer, which goes to the tracker over HTTP: a signed Twilio webhook
for an SMS reply, the confirm link for an e-mail. Nothing here writes to the database
directly; the week only does what people and the services do.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html import unescape
from typing import Protocol, TextIO
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from dosewise.samples import Habit, SamplePerson
from scheduler.reminders import LOZENGE_NAME, ReminderTiming, waking_bounds_around

TICK = timedelta(minutes=5)  # how often the simulated scheduler tick and notifier run
# the real service materialises every few minutes of real time; an hour of simulated time
# keeps the same 48 h horizon at a fraction of the work
MATERIALISE_EVERY = timedelta(hours=1)
REMINDER_MARK = "Reply TAKEN, SKIP or LATER"  # the end of every SMS dose reminder
_LINK = re.compile(r"^(Taken|Skipped): (\S+)$", re.MULTILINE)
_SNOOZE_HEAD = re.compile(r"^(Again: |dosewise \d{2}:\d{2} again: )")
_LOGGED = re.compile(r"\blogged at\b", re.IGNORECASE)
_TAKEN_LATE = re.compile(r"\btaken late\b")  # services.replies.late_taken_text
# On this day of the week the first person who replies by SMS answers the day's last dose
# reminder (one whose window closes with the waking day) only after its window has closed,
# LATE_ANSWER_AFTER_CLOSE later: a TAKEN that the tracker records as taken late.
LATE_ANSWER_DAY = 2
LATE_ANSWER_AFTER_CLOSE = timedelta(minutes=9)
_PAGE_TEXT = re.compile(r"<p>(.*?)</p>", re.DOTALL)


class SimulatedClock:
    """The week's 'now': read by the scheduler, the notifier and the tracker's thread."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock starts at an aware instant")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance_to(self, instant: datetime) -> None:
        with self._lock:
            self._now = max(self._now, instant)


class Scheduler(Protocol):
    def run_due_jobs(self, materialise: bool = True) -> bool: ...


class Notifier(Protocol):
    async def step(self, now: datetime) -> int: ...


class Tracker(Protocol):
    """The tracker as a phone and a mail reader reach it."""

    async def sms(self, from_number: str, body: str) -> str | None: ...

    async def open_link(self, url: str) -> tuple[int, str]: ...


@dataclass(frozen=True)
class Delivered:
    """A message as the console channel recorded it."""

    to: str
    body: str


@dataclass(frozen=True)
class DemoPerson:
    sample: SamplePerson

    @property
    def name(self) -> str:
        return self.sample.regimen.person.name.split()[0]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.sample.regimen.person.timezone)

    @property
    def phone(self) -> str:
        return self.sample.regimen.person.phone

    @property
    def addresses(self) -> set[str]:
        person = self.sample.regimen.person
        return {person.phone, *([person.email] if person.email else [])}


@dataclass(order=True)
class _Answer:
    """Something a person will do at `at`: send an SMS or open a link."""

    at: datetime
    order: int
    person: DemoPerson = field(compare=False)
    sms: str | None = field(default=None, compare=False)
    link: tuple[str, str] | None = field(default=None, compare=False)  # (label, url)
    to_a_dose: bool = field(default=True, compare=False)  # not COLD or WELL


class Transcript:
    """The week as the phones saw it, one line per message, times in each person's zone."""

    def __init__(self, out: TextIO, progress: Progress | None = None) -> None:
        self._out = out
        self._progress = progress
        self.lines: list[str] = []

    def heading(self, label: str) -> None:
        self._write(f"\n{label}")

    def message(self, at: datetime, person: DemoPerson, arrow: str, text: str) -> None:
        local = at.astimezone(person.zone)
        flat = " ".join(text.split())
        self._write(f"  {local:%a %d %H:%M}  {person.name:<6} {arrow:<2} {flat}")

    def _write(self, line: str) -> None:
        self.lines.append(line)
        if self._progress is not None:
            self._progress.clear()
        self._out.write(line + "\n")
        self._out.flush()
        if self._progress is not None:
            self._progress.draw()


class Progress:
    """A bar of simulated days on a terminal's stderr; nothing when stderr is not a terminal."""

    def __init__(self, days: int, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._days = days
        self._done = 0.0
        self._label = ""
        self._live = self._stream.isatty()

    def update(self, done_days: float, label: str) -> None:
        self._done, self._label = done_days, label
        self.draw()

    def draw(self) -> None:
        if not self._live:
            return
        width = 28
        filled = round(width * min(self._done, self._days) / self._days)
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(f"\r[{bar}] day {self._shown_day()}/{self._days} {self._label}")
        self._stream.flush()

    def clear(self) -> None:
        if self._live:
            self._stream.write("\r\033[K")

    def finish(self) -> None:
        self.clear()
        self._live = False

    def _shown_day(self) -> int:
        return min(self._days, int(self._done) + 1)


@dataclass
class Tally:
    """What the week's phones got and were told, counted from the messages themselves:
    dose reminders apart from zinc lozenges, which the adherence report counts apart too."""

    reminders: int = 0  # the first message of each dose
    nudges: int = 0  # follow-ups of unanswered doses and snoozed doses coming back
    lozenges: int = 0
    replies: int = 0
    taken: int = 0  # on time or late, a TAKEN after the window closed included
    skipped: int = 0
    lozenges_taken: int = 0


class Week:
    def __init__(
        self,
        people: Iterable[DemoPerson],
        clock: SimulatedClock,
        scheduler: Scheduler,
        notifier: Notifier,
        delivered: Callable[[], list[Delivered]],
        tracker: Tracker,
        transcript: Transcript,
        rng: random.Random,
    ) -> None:
        self.people = list(people)
        self._by_address = {address: p for p in self.people for address in p.addresses}
        self._clock = clock
        self._scheduler = scheduler
        self._notifier = notifier
        self._delivered = delivered
        self._seen = 0
        self._tracker = tracker
        self._transcript = transcript
        self._rng = rng
        self._answers: list[_Answer] = []
        self._order = itertools.count()
        self._window: tuple[date, date] | None = None
        self.tally: dict[str, Tally] = {person.name: Tally() for person in self.people}
        sms_people = [p for p in self.people if p.sample.regimen.person.channel == "sms"]
        self._late_answerer = sms_people[0] if sms_people else None
        self._late_answer_planned = False
        # (when, who, the tracker's answer) of each TAKEN that came after its window closed
        self.late_answers: list[tuple[datetime, DemoPerson, str]] = []

    async def run(self, first_day: date, days: int, progress: Progress | None = None) -> datetime:
        """Simulate `days` days from the first day's midnight (the earliest zone's) until the
        last day's end in the latest zone; returns the simulated end."""
        start = min(_midnight(first_day, person.zone) for person in self.people)
        end = max(_midnight(first_day + timedelta(days=days), p.zone) for p in self.people)
        self._window = (first_day, first_day + timedelta(days=days - 1))
        self._plan_colds(first_day)
        shown_day: date | None = None
        materialised_at: datetime | None = None
        at = start
        while at <= end:
            await self._answer_until(at)
            self._clock.advance_to(at)
            zone = self.people[0].zone  # the days are headed in the first person's zone
            today = at.astimezone(zone).date()
            if today != shown_day and today < first_day + timedelta(days=days):
                shown_day = today
                self._transcript.heading(f"-- {today:%A %d %B %Y} in {zone.key} --")
            if progress is not None:
                progress.update((at - start) / (end - start) * days, f"{today:%a %d %b}")
            materialise = materialised_at is None or at - materialised_at >= MATERIALISE_EVERY
            if materialise:
                materialised_at = at
            self._scheduler.run_due_jobs(materialise=materialise)
            while await self._notifier.step(at) > 0:
                pass
            self._read_phones(at)
            at += TICK
        return end

    # -- the people's side ---------------------------------------------------------------

    def _plan_colds(self, first_day: date) -> None:
        for person in self.people:
            sample = person.sample
            if sample.cold_on_day is not None:
                cold_at = _at(first_day, sample.cold_on_day, time(8, 10), person)
                self._plan(cold_at, person, "COLD", to_a_dose=False)
            if sample.well_on_day is not None:
                well_at = _at(first_day, sample.well_on_day, time(19, 40), person)
                self._plan(well_at, person, "WELL", to_a_dose=False)

    def _read_phones(self, now: datetime) -> None:
        delivered = self._delivered()
        for message in delivered[self._seen :]:
            person = self._by_address.get(message.to)
            if person is None:
                continue
            email = message.to != person.phone
            self._transcript.message(now, person, "@<" if email else "<", _shown(message))
            self._react(person, message, now, email)
        self._seen = len(delivered)

    def _react(self, person: DemoPerson, message: Delivered, now: datetime, email: bool) -> None:
        if not _is_reminder(message, email):
            return
        kind = _kind(message)
        if self._in_window(now, person):
            tally = self.tally[person.name]
            if LOZENGE_NAME in message.body:
                tally.lozenges += kind == "initial"
            elif kind == "initial":
                tally.reminders += 1
            else:
                tally.nudges += 1
        if any(answer.person == person and answer.to_a_dose for answer in self._answers):
            return  # already on it: a follow-up does not make anyone answer twice
        if kind == "initial" and not email and self._answers_after_the_window(person, now):
            self._late_answer_planned = True
            self._plan(self._window_closes(person, now) + LATE_ANSWER_AFTER_CLOSE, person, "TAKEN")
            return
        habit = person.sample.habit
        if kind == "snooze" or (kind == "followup" and self._rng.random() < habit.answers_followup):
            self._respond(person, message, now, "TAKEN", minutes=(2, 15))
        elif kind == "initial":
            self._respond_by_habit(person, message, now, habit, email)

    def _respond_by_habit(
        self, person: DemoPerson, message: Delivered, now: datetime, habit: Habit, email: bool
    ) -> None:
        roll = self._rng.random()
        for chance, word, minutes in (
            (habit.on_time, "TAKEN", (1, 20)),
            (habit.late, "TAKEN", (35, 80)),
            (habit.skip, "SKIP", (2, 15)),
            (0.0 if email else habit.snooze, "LATER 20", (1, 10)),
        ):
            if roll < chance:
                self._respond(person, message, now, word, minutes)
                return
            roll -= chance

    def _respond(
        self,
        person: DemoPerson,
        message: Delivered,
        now: datetime,
        word: str,
        minutes: tuple[int, int],
    ) -> None:
        at = now + timedelta(minutes=self._rng.randint(*minutes))
        if message.to == person.phone:
            self._plan(at, person, word)
            return
        links = dict(_LINK.findall(message.body))
        label = "Skipped" if word == "SKIP" else "Taken"
        if label in links:
            heapq.heappush(
                self._answers,
                _Answer(at, next(self._order), person, link=(label, unescape(links[label]))),
            )

    def _answers_after_the_window(self, person: DemoPerson, now: datetime) -> bool:
        """Whether this reminder, sent at `now`, is the one answered after its window closed
        (LATE_ANSWER_DAY): the day's last, whose window closes with the waking day."""
        first, _last = self._window or (date.max, date.min)
        if person != self._late_answerer or self._late_answer_planned:
            return False
        if now.astimezone(person.zone).date() != first + timedelta(days=LATE_ANSWER_DAY - 1):
            return False
        _awake_from, awake_to = waking_bounds_around(person.sample.regimen, now)
        return self._window_closes(person, now) == awake_to

    @staticmethod
    def _window_closes(person: DemoPerson, sent: datetime) -> datetime:
        """When the scheduler closes the window of a reminder sent at `sent` (its due time,
        to the tick)."""
        _awake_from, awake_to = waking_bounds_around(person.sample.regimen, sent)
        return ReminderTiming().closes(sent, awake_to)

    def _plan(self, at: datetime, person: DemoPerson, word: str, to_a_dose: bool = True) -> None:
        answer = _Answer(at, next(self._order), person, sms=word, to_a_dose=to_a_dose)
        heapq.heappush(self._answers, answer)

    def _in_window(self, at: datetime, person: DemoPerson) -> bool:
        """Whether `at` is on one of the report's days where the person lives."""
        first, last = self._window or (date.max, date.min)
        return first <= at.astimezone(person.zone).date() <= last

    async def _answer_until(self, until: datetime) -> None:
        while self._answers and self._answers[0].at < until:
            answer = heapq.heappop(self._answers)
            self._clock.advance_to(answer.at)
            await self._send(answer)

    async def _send(self, answer: _Answer) -> None:
        person = answer.person
        # the tally counts what happened on the report's days only
        tally = self.tally[person.name] if self._in_window(answer.at, person) else Tally()
        tally.replies += 1
        if answer.sms is not None:
            self._transcript.message(answer.at, person, ">", answer.sms)
            reply = await self._tracker.sms(person.phone, answer.sms)
            if reply:
                self._count(tally, reply)
                self._transcript.message(answer.at, person, "<", reply)
                if _TAKEN_LATE.search(reply):
                    self.late_answers.append((answer.at, person, reply))
        elif answer.link is not None:
            label, url = answer.link
            self._transcript.message(answer.at, person, "@>", f"opens the '{label}' link")
            status, page = await self._tracker.open_link(url)
            self._count(tally, page)
            self._transcript.message(answer.at, person, "@<", f"page ({status}): {page}")

    @staticmethod
    def _count(tally: Tally, answer: str) -> None:
        # the tracker's own words for a recorded dose (services.replies.taken_text,
        # late_taken_text and skipped_text): anything else recorded nothing
        recorded = bool(_LOGGED.search(answer) or _TAKEN_LATE.search(answer))
        if LOZENGE_NAME in answer:
            tally.lozenges_taken += recorded
        elif recorded:
            tally.taken += 1
        elif answer.startswith("Skipped: "):
            tally.skipped += 1


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def _at(first_day: date, day_number: int, clock: time, person: DemoPerson) -> datetime:
    return datetime.combine(first_day + timedelta(days=day_number - 1), clock, person.zone)


def _is_reminder(message: Delivered, email: bool) -> bool:
    return bool(_LINK.search(message.body)) if email else message.body.endswith(REMINDER_MARK)


def _kind(message: Delivered) -> str:
    """initial, followup or snooze, from the words services.texts puts first."""
    first = message.body.split("\n", 1)[0]
    if "not answered yet" in first.lower():
        return "followup"
    if _SNOOZE_HEAD.match(first):
        return "snooze"
    return "initial"


def _shown(message: Delivered) -> str:
    """An SMS as it is; an e-mail as its subject line."""
    return message.body.split("\n", 1)[0] if "\n" in message.body else message.body


def twiml_text(document: str) -> str | None:
    """The text of a TwiML answer's <Message>, or None for an empty <Response/>."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError:
        return None
    message = root.find("Message")
    return None if message is None else (message.text or "")


def page_text(html: str) -> str:
    found = _PAGE_TEXT.search(html)
    return unescape(found.group(1)).strip() if found else html.strip()[:80]


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]*)"')
_CHOSEN = re.compile(r'<button type="submit" name="action" value="(\w+)" class="chosen"')


def chosen_answer(html: str) -> tuple[str, str] | None:
    """The confirm page's form address and its pre-selected button's action, which a reader
    presses; None for a page without buttons (a used, expired or unknown link)."""
    form, chosen = _FORM_ACTION.search(html), _CHOSEN.search(html)
    if form is None or chosen is None:
        return None
    return unescape(form.group(1)), chosen.group(1)
