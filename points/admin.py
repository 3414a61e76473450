from django.contrib import admin

from .models import Account, AuditEvent, GuildSettings, Transfer


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are append-only (DOMAIN §3): no add, change or delete from the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "guild_id", "kind", "owner_id", "market", "balance", "created_at")
    list_filter = ("kind", "guild_id")
    search_fields = ("=owner_id", "=id", "=market__id")
    list_select_related = ("market",)
    ordering = ("-id",)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "guild_id",
        "code",
        "amount",
        "source",
        "destination",
        "memo",
        "idempotency_key",
    )
    list_filter = ("code", "guild_id")
    search_fields = ("=source__owner_id", "=destination__owner_id", "idempotency_key", "=id")
    list_select_related = ("source", "destination")
    ordering = ("-id",)
    date_hierarchy = "created_at"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "action", "target_type", "target_id", "actor", "reason")
    list_filter = ("action", "target_type", "guild_id")
    search_fields = ("target_id", "reason", "idempotency_key", "=actor_discord_id")
    list_select_related = ("actor_user",)
    date_hierarchy = "created_at"

    @admin.display(description="actor")
    def actor(self, obj: AuditEvent) -> str:
        return obj.actor_user.get_username() if obj.actor_user else obj.actor_label


@admin.register(GuildSettings)
class GuildSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "guild_id",
        "starting_balance",
        "daily_bonus",
        "max_bet",
        "default_liquidity",
        "fee_bps",
        "min_resolution_votes",
        "auto_refund_hours",
    )
    search_fields = ("=guild_id",)
