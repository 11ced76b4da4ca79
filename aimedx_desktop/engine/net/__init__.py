"""DICOM networking with pynetdicom: send (C-STORE SCU), listen (C-STORE SCP into an inbox),
query/retrieve (C-FIND + C-GET).

Opt-in: nothing here opens a socket until the caller names a node (or a port to listen on)
and starts an action that uses it; importing these modules opens nothing.

- nodes.py        AET@HOST:PORT, the Node model, AE title rules
- association.py  opening an association, every failure said in one line; C-ECHO
- send.py         DICOM files to a node, one status per file
- inbox.py        the received-files folder: atomic storing, listing studies and series
- receive.py      what we accept, and the C-STORE handler that files it into the inbox
- listen.py       the storage SCP that fills the inbox
- query.py        C-FIND (study, series) and C-GET into the inbox
"""
