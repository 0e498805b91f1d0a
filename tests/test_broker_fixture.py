import socket

def test_mosquitto_fixture_accepts_connections(mosquitto):
    with socket.create_connection(("127.0.0.1", mosquitto.port), timeout=2):
        pass
