"""Rented servers, whatever the cloud: create, adopt, wait for, and destroy them without losing one.

A forgotten server costs the teacher money every hour, so everything here is
built around never losing track of one:

- every server carries the tag ``fleet:NAME``, given in the create request
  itself, so teardown finds it through the API even without the state file;
- its id is written to the state file the moment the API returns it;
- a create whose answer was lost (5xx, broken connection) is never repeated
  blindly: fleet lists the tag and creates only the names still missing;
- teardown destroys by id (state and API) and by tag, then polls until the
  API lists nothing with the tag and every id it knew answers 404.

The cloud itself sits behind :class:`fleet.cloud.Provider`. Here:
:mod:`.decide` (pure: names, what to keep/create/destroy, batches, the price
quote), :mod:`.records` (the state's record of servers, and the hosts it
gives), :mod:`.lifecycle` (provision's and teardown's I/O).
"""
