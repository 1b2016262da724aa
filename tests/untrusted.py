"""A pickle payload that proves code ran: unpickling it creates a file."""


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
