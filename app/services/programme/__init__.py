"""Cross-domain programme actions: a relationship change together with its sessions.

Reassigning a mentee (with their sessions cancelled or transferred), ending an assignment,
deactivating or reactivating a user and a role change each touch relationships and sessions
in one transaction, with their outbound events in the same transaction. They live here,
above the domains they call (relationships, sessions), which never import this package.

Lock order (every path that changes relationships or sessions follows it, so none can
deadlock with another):

1. users rows: every user involved, in one statement, in id order, `FOR NO KEY UPDATE`
   (app/services/relationships/locks.py; the matcher locks its mentors and waiting mentees
   the same way, and booking locks the mentor's row);
2. assignment rows (`FOR UPDATE`, or the row being ended or inserted);
3. session rows (`FOR UPDATE`, in start order), or the session being inserted.

Why this stops a reassignment and a booking of the same mentee from leaving a session with
a mentor who no longer has the mentee: the reassignment locks the old mentor's row before
it reads that mentor's sessions, and a booking locks the mentor's row before it checks the
assignment in a later statement. Whichever takes the row second sees what the other
committed: the booking finds the assignment ended (404 `not_assigned`), or the reassignment
finds the booked session and cancels or transfers it.
"""
