"""Sessions: booking and changes (`booking`), slots and time off (`scheduling`), calendar
feeds (`calendar_feeds`)."""
