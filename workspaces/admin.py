"""Admin for packets and launches.

Packets are edited as their slot texts; saving makes a new version (the old
one stays, and lanes keep the version they ran). The lane page gains the
launch inline (packet files, sources, checked outputs) by re-registering the
lanes admin with one more inline, so lanes/admin.py never imports workspaces.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from lanes.admin import LaneAdmin
from lanes.admin_base import ReadOnlyInlineMixin
from lanes.models import Lane
from workspaces.models import LaneLaunch, Packet, TurnOutputCheck, Worktree
from workspaces.packets import SLOT_FILES, LoadedFile, PacketContent

# form field -> packet file (the editable slots; hooks/ and codex/ are kept)
EDITABLE = {slot: name for name, slot in SLOT_FILES.items()}


def files_table(packet: Packet | None) -> str:
    if packet is None:
        return "-"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td>"
        "<td><details><summary>text</summary><pre>{}</pre></details></td></tr>",
        (
            (f.slot, f.path, f.bytes, f.sha256[:16], f.text)
            for f in packet.files.order_by("path")
        ),
    )
    return format_html(
        "<p>{}</p><table><tr><th>slot</th><th>path</th><th>bytes</th>"
        "<th>sha256</th><th></th></tr>{}</table>",
        str(packet),
        rows,
    )


class PacketForm(forms.ModelForm):
    goal = forms.CharField(required=False, widget=forms.Textarea, label="goal.md")
    prompt = forms.CharField(required=False, widget=forms.Textarea, label="prompt.md")
    output_schema = forms.CharField(
        required=False, widget=forms.Textarea, label="output.schema.json"
    )
    base = forms.CharField(required=False, widget=forms.Textarea, label="base.md")
    developer = forms.CharField(
        required=False, widget=forms.Textarea, label="developer.md"
    )
    config = forms.CharField(
        required=False, widget=forms.Textarea, label="dispatch.toml"
    )

    class Meta:
        model = Packet
        fields = ("name",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True
        if self.instance.pk:
            for f in self.instance.files.all():
                if f.slot in EDITABLE:
                    self.fields[f.slot].initial = f.text

    def content(self) -> PacketContent:
        files = [
            LoadedFile(slot, EDITABLE[slot], self.cleaned_data[slot])
            for slot in EDITABLE
            if self.cleaned_data.get(slot)
        ]
        if self.instance.pk:  # hooks/ and codex/ carry over unchanged
            files += [
                LoadedFile(f.slot, f.path, f.text)
                for f in self.instance.files.exclude(slot__in=list(EDITABLE))
            ]
        return PacketContent(
            files=files,
            name=self.cleaned_data.get("name", ""),
            source_dir=self.instance.source_dir if self.instance.pk else "",
        )

    def clean(self) -> dict[str, Any]:
        from dispatchsite.core.errors import DispatchError
        from workspaces.packets import packet_validate
        from workspaces.services.packets import clean_packet_name

        data = super().clean() or {}
        try:
            clean_packet_name(data.get("name") or "")
            packet_validate(self.content())
        except DispatchError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


class LaunchForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="the new lane's name")
    cwd = forms.CharField(max_length=1024, help_text="absolute working directory")
    send = forms.BooleanField(required=False, initial=True, help_text="first turn")


@admin.register(Packet)
class PacketAdmin(admin.ModelAdmin):
    form = PacketForm
    list_display = ("name", "version", "source_dir", "created_at")
    list_filter = ("name",)
    search_fields = ("name", "source_dir")
    readonly_fields = ("version", "source_dir", "files_view", "launch_link")
    actions = ("launch_lane",)

    def get_fields(  # type: ignore[override]
        self, request: HttpRequest, obj: Any = None
    ) -> list[str]:
        return [
            "name",
            *EDITABLE,
            *(["version", "source_dir", "files_view", "launch_link"] if obj else []),
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Packet]:
        return super().get_queryset(request).exclude(name="")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # lanes keep the versions they ran

    @admin.display(description="files")
    def files_view(self, packet: Packet) -> str:
        return files_table(packet)

    @admin.display(description="launch")
    def launch_link(self, packet: Packet) -> str:
        url = reverse("admin:workspaces_packet_launch", args=[packet.pk])
        return format_html('<a href="{}">launch a lane from this packet</a>', url)

    def save_model(
        self, request: HttpRequest, obj: Packet, form: forms.ModelForm, change: bool
    ) -> None:
        from dispatchsite.core.origin import Origin
        from workspaces.services.packets import packet_save

        assert isinstance(form, PacketForm)
        actor = getattr(request.user, "get_username", lambda: "")()
        saved = packet_save(
            name=form.cleaned_data["name"],
            content=form.content(),
            origin=Origin(surface="admin", actor=f"admin:{actor}"),
        )
        # The edited row itself never changes: the admin continues with the
        # version just made.
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
        obj._state = saved._state

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: Any
    ) -> None:
        pass  # files were written by packet_save

    @admin.action(description="launch a lane from this packet")
    def launch_lane(
        self, request: HttpRequest, queryset: QuerySet[Packet]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "choose exactly one packet to launch")
            return None
        packet = queryset.get()
        url = reverse("admin:workspaces_packet_launch", args=[packet.pk])
        return HttpResponseRedirect(url)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:packet_id>/launch/",
                self.admin_site.admin_view(self.launch_view),
                name="workspaces_packet_launch",
            )
        ]
        return extra + super().get_urls()

    def launch_view(self, request: HttpRequest, packet_id: int) -> HttpResponse:
        from dispatchsite.core.errors import DispatchError
        from dispatchsite.core.origin import Origin
        from dispatchsite.core.registry import execute

        packet = Packet.objects.get(pk=packet_id)
        form = LaunchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            actor = getattr(request.user, "get_username", lambda: "")()
            try:
                out = execute(
                    "new",
                    {
                        "name": form.cleaned_data["name"],
                        "cwd": form.cleaned_data["cwd"],
                        "send": form.cleaned_data["send"],
                        "packet": f"{packet.name}@v{packet.version}",
                    },
                    Origin(surface="admin", actor=f"admin:{actor}"),
                )
            except DispatchError as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                messages.error(request, f"new: {exc.message}{hint}")
            else:
                lane = Lane.objects.get(thread_id=out["id"])
                messages.success(request, f"launched {lane.handle} ({lane.ref})")
                return HttpResponseRedirect(
                    reverse("admin:lanes_lane_change", args=[lane.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Launch a lane from {packet}",
            "form": form,
            "packet": packet,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/workspaces/launch.html", context)


class LaneLaunchInline(ReadOnlyInlineMixin, admin.StackedInline):
    model = LaneLaunch
    max_num = 1
    fields = ("packet_files", "sources_view", "settings", "staged", "output_checks")
    readonly_fields = fields
    verbose_name = "launch"

    @admin.display(description="packet files")
    def packet_files(self, launch: LaneLaunch) -> str:
        return files_table(launch.packet)

    @admin.display(description="sources")
    def sources_view(self, launch: LaneLaunch) -> str:
        return format_html_join(
            "",
            "<div>{}: {} <code>{}</code> {} bytes <code>{}</code></div>",
            (
                (
                    s["slot"],
                    s["origin"],
                    s.get("path") or "",
                    s["bytes"],
                    s["sha256"][:16],
                )
                for s in launch.sources
            ),
        )

    @admin.display(description="checked output")
    def output_checks(self, launch: LaneLaunch) -> str:
        checks = TurnOutputCheck.objects.filter(lane_id=launch.lane_id)
        return (
            format_html_join(
                "",
                "<div><code>{}</code> {} {}</div>",
                (
                    (c.turn_id, "valid" if c.output_valid else "INVALID", c.error)
                    for c in checks
                ),
            )
            or "-"
        )


class LaneWithLaunchAdmin(LaneAdmin):
    inlines = (*LaneAdmin.inlines, LaneLaunchInline)  # type: ignore[assignment]


admin.site.unregister(Lane)
admin.site.register(Lane, LaneWithLaunchAdmin)


@admin.register(Worktree)
class WorktreeAdmin(admin.ModelAdmin):
    list_display = ("path", "branch", "lane", "head", "created_at", "removed_at")
    readonly_fields = (
        "lane",
        "path",
        "branch",
        "base",
        "head",
        "source_repo",
        "created_at",
        "removed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
