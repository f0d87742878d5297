"""What the stand-in's DigitalOcean offers: regions, sizes with prices, images.

Sizes and prices are DigitalOcean's published Basic droplet list (monthly
price / 672 hours = hourly). Every image slug maps to the same local test
host image, ``fleet-testhost:debian12`` (systemd + OpenSSH, Debian 12): the
droplet runs Debian whatever slug was asked for, because no cloud image can
be fetched here. Fleet detects the OS from os-release, so the provisioning
path it takes is the Debian one.
"""
from __future__ import annotations

from typing import Any

from practice.images import CLOUDHOST_IMAGE

REGIONS = {
    "ams3": "Amsterdam 3", "fra1": "Frankfurt 1", "lon1": "London 1", "nyc3": "New York 3", "sfo3": "San Francisco 3",
}
# slug: (vcpus, memory MB, disk GB, transfer TB, price per month)
SIZES = {
    "s-1vcpu-1gb": (1, 1024, 25, 1.0, 6.0),
    "s-1vcpu-2gb": (1, 2048, 50, 2.0, 12.0),
    "s-2vcpu-2gb": (2, 2048, 60, 3.0, 18.0),
    "s-2vcpu-4gb": (2, 4096, 80, 4.0, 24.0),
    "s-4vcpu-8gb": (4, 8192, 160, 5.0, 48.0),
}
NOT_IN = {"s-4vcpu-8gb": {"sfo3"}}  # one size missing from one region, to exercise that error
IMAGES = {
    "ubuntu-24-04-x64": ("Ubuntu", "24.04 (LTS) x64"),
    "ubuntu-22-04-x64": ("Ubuntu", "22.04 (LTS) x64"),
    "debian-12-x64": ("Debian", "12 x64"),
}
MACHINE_IMAGE = CLOUDHOST_IMAGE  # what every image slug really boots: the test host with cloud-init
HOURS_A_MONTH = 672


def size_regions(slug: str) -> list[str]:
    return [r for r in REGIONS if r not in NOT_IN.get(slug, set())]


def size_json(slug: str) -> dict[str, Any]:
    vcpus, memory, disk, transfer, monthly = SIZES[slug]
    return {"slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": transfer,
            "price_monthly": monthly, "price_hourly": round(monthly / HOURS_A_MONTH, 5),
            "regions": size_regions(slug), "available": True, "description": "Basic",
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}]}


def region_json(slug: str) -> dict[str, Any]:
    return {"name": REGIONS[slug], "slug": slug, "features": ["backups", "ipv6", "metadata", "install_agent"],
            "available": True, "sizes": [s for s in SIZES if slug in size_regions(s)]}


def image_json(slug: str) -> dict[str, Any]:
    distribution, name = IMAGES[slug]
    return {"id": 100_000 + sorted(IMAGES).index(slug), "name": name, "type": "base", "distribution": distribution,
            "slug": slug, "public": True, "regions": list(REGIONS), "created_at": "2025-04-24T00:00:00Z",
            "min_disk_size": 10, "size_gigabytes": 2.5, "tags": [], "status": "available"}
