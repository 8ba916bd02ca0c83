"""SeaweedFS's ports: `make s3-up` failed now and then with "bind: address already in use" because the
ports of master, volume, filer (and their gRPC ports, +10000) were probed one by one and released at once,
so two picks could coincide or a gRPC partner be taken. They are now reserved as one held set, and weed is
started once more on a fresh set if it still finds one taken."""

import socket
from itertools import islice

import pytest

from compute.processes import stop_group
from infra import s3local


def _listening(port: int = 0) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(1)
    return s


def _free_pairs(n: int) -> list[int]:
    """`n` distinct ports that, with their +10000 partners, are free now (some other process may still take
    one before the test holds it: the reservation must cope with that too)."""
    found: list[int] = []
    for port in islice(s3local._kernel_ports(), 1000):
        partner = port + s3local.GRPC_OFFSET
        if partner <= 65535 and port not in found and all(abs(port - f) != s3local.GRPC_OFFSET for f in found):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", partner))
                except OSError:
                    continue
            found.append(port)
            if len(found) == n:
                return found
    raise AssertionError("no free port pairs")


def _all_ports(reserved: s3local.Ports) -> list[int]:
    return [p for name, port in reserved.ports.items()
            for p in ((port,) if name == "metrics" else (port, port + s3local.GRPC_OFFSET))]


def test_the_reserved_set_is_distinct_held_and_avoids_ports_in_use():
    # offered first: a port in use, a port whose gRPC partner is in use, then the same free port over and
    # over and a port that is another's gRPC partner; the set must skip all of them and still come out whole
    busy = _listening()
    half_busy, *fresh = _free_pairs(12)
    partner_busy = _listening(half_busy + s3local.GRPC_OFFSET)
    in_use = {busy.getsockname()[1], partner_busy.getsockname()[1]}
    offered = [busy.getsockname()[1], half_busy, fresh[0], fresh[0], fresh[0] + s3local.GRPC_OFFSET, fresh[0],
               *fresh[1:]]
    reserved = s3local.reserve_ports(candidates=iter(offered))
    try:
        ports = _all_ports(reserved)
        assert set(reserved.ports) == {*s3local.SERVICES, "metrics"}
        assert len(ports) == len(set(ports)) == 9  # four services with their gRPC partners, and metrics
        assert not in_use & set(ports) and half_busy not in reserved.ports.values()
        for port in ports:  # held: nobody else can take one before weed starts
            with pytest.raises(OSError):
                _listening(port).close()
    finally:
        reserved.release()
        busy.close()
        partner_busy.close()
    for port in ports:  # released whole, for weed to take
        _listening(port).close()


def test_a_fixed_s3_port_in_use_is_named():
    busy = _listening(_free_pairs(1)[0])  # retrying cannot free it: `make s3-up` says which port and what to do
    try:
        with pytest.raises(OSError, match=rf"S3 port {busy.getsockname()[1]} .* in use.*SHIFTLAKE_S3_PORT"):
            s3local.reserve_ports(s3_port=busy.getsockname()[1])
    finally:
        busy.close()


def _answers(server: s3local.Server) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=server.env["AWS_ACCESS_KEY_ID"], secret=server.env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=server.env["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    assert fs.ls(s3local.BUCKET) == []  # up, with the bucket created


def test_start_skips_a_first_candidate_port_that_is_taken(tmp_path, monkeypatch):
    busy = _listening()
    real = s3local._kernel_ports
    monkeypatch.setattr(s3local, "_kernel_ports", lambda: iter([busy.getsockname()[1], *islice(real(), 100)]))
    server = s3local.start(state=tmp_path, identities=tmp_path / "identities.json")
    try:
        assert busy.getsockname()[1] not in [int(a.split("=")[1]) for a in server.process.args if "port" in a]
        _answers(server)
    finally:
        stop_group(server.process, timeout=1)  # a throwaway server: no need for a clean stop
        busy.close()


def test_start_retries_on_a_fresh_set_when_a_port_is_taken_before_weed_listens(tmp_path, monkeypatch):
    # the race no reservation can close: between the release and weed's listen, something takes a port
    real_launch, stolen = s3local._launch, []

    def launch_and_steal(state, identities, ports):
        if not stolen:
            release = ports.release
            ports.release = lambda: (release(), stolen.append(_listening(ports.ports["master"])))
        return real_launch(state, identities, ports)

    monkeypatch.setattr(s3local, "_launch", launch_and_steal)
    server = s3local.start(state=tmp_path, identities=tmp_path / "identities.json")
    try:
        assert len(stolen) == 1 and s3local.ALREADY_IN_USE in (tmp_path / "weed.log").read_text()
        assert f"-master.port={stolen[0].getsockname()[1]}" not in server.process.args
        _answers(server)
    finally:
        stop_group(server.process, timeout=1)  # a throwaway server: no need for a clean stop
        stolen[0].close()
