"""GPS for truck units: NMEA parsing (pure), fix sources (serial, gpsd, route file) and
the tracker that keeps the latest fix for events and batches ``track`` messages."""
