// What the SPA does with the generated types; `tsc --strict` must accept it (CI:
// tests/contract/test_typescript_client.py). A breaking change of the API breaks this file.
import type { components, paths } from "./schema";

type Dashboard = components["schemas"]["DashboardPublic"];
type Problem = components["schemas"]["Problem"];
type BookingBody =
  paths["/api/v1/mentor/sessions"]["post"]["requestBody"]["content"]["application/json"];
type Booked =
  paths["/api/v1/mentor/sessions"]["post"]["responses"]["201"]["content"]["application/json"];

export async function loadDashboard(base: string, token: string): Promise<Dashboard> {
  const response = await fetch(`${base}/api/v1/mentor/dashboard`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw await problemOf(response);
  const dashboard = (await response.json()) as Dashboard;
  const overdue: number = dashboard.workqueue.overdue;
  const atRisk: string[] = dashboard.at_risk_mentees.map((m) => m.mentee_id);
  void overdue;
  void atRisk;
  return dashboard;
}

export async function book(base: string, token: string, body: BookingBody): Promise<Booked> {
  const response = await fetch(`${base}/api/v1/mentor/sessions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw await problemOf(response);
  const booked = (await response.json()) as Booked;
  const link: string | null | undefined = booked.meeting_url;
  void link;
  return booked;
}

// EventSource cannot send headers: the token goes in the query string.
export function dashboardStreamUrl(base: string, token: string, lastEventId?: string): string {
  const path: keyof paths = "/api/v1/mentor/dashboard/stream";
  const url = new URL(path, base);
  url.searchParams.set("access_token", token);
  if (lastEventId) url.searchParams.set("last_event_id", lastEventId);
  return url.toString();
}

async function problemOf(response: Response): Promise<Problem> {
  return (await response.json()) as Problem;
}

// Each operation's problem codes are an enum per status: a `case` naming a code the
// operation cannot return does not compile, and removing a code breaks this file. New
// codes are a minor change (README "stability"): keep a `default`.
type BookingResponses = paths["/api/v1/mentor/sessions"]["post"]["responses"];
type BookingConflict = BookingResponses["409"]["content"]["application/problem+json"];
type BookingProblem =
  | BookingConflict
  | BookingResponses["404"]["content"]["application/problem+json"]
  | BookingResponses["503"]["content"]["application/problem+json"];

export function explain(problem: BookingProblem): string {
  switch (problem.code) {
    case "double_booking":
      return "That time is taken: pick another slot.";
    case "capacity_exceeded":
      return "Your weekly slots are full.";
    case "outside_availability":
      return "Outside your availability.";
    case "not_assigned":
      return "This mentee is no longer yours.";
    case "video_provider_unavailable":
      return "The video call could not be created: try again in a moment.";
    default:
      return problem.detail ?? problem.title;
  }
}

export function isConflict(problem: Problem): problem is BookingConflict {
  const conflicts: readonly BookingConflict["code"][] = [
    "double_booking", "capacity_exceeded", "outside_availability",
  ];
  return problem.status === 409 && (conflicts as readonly string[]).includes(problem.code);
}
