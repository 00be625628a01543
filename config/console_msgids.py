"""Strings of Django's admin and django-unfold that the console shows, listed here so that
`make messages` keeps them in Tarif's catalogue (config/locale).

Why: unfold ships no French catalogue (its page furniture, "Type to search", "Filters"... would
stay English), and some of Django's French admin strings read badly with our model names
("Modification de abonnement": Django's "Change %s" elides and genders nothing). A catalogue in
LOCALE_PATHS wins over the apps' own, so translating these msgids in config/locale/fr overrides
theirs everywhere. Nothing imports this module at run time; only the extraction reads it.
"""

from django.utils.translation import gettext_noop, pgettext_lazy

MSGIDS = (
    # Django REST framework messages its French catalogue lacks (the API answers in French with
    # Accept-Language: fr, issue 16)
    gettext_noop("A valid biginteger is required."),
    # Django admin: titles built with the model's verbose name (neutral wording, no elision)
    gettext_noop("Add %s"),
    gettext_noop("Change %s"),
    gettext_noop("View %s"),
    gettext_noop("Select %s to change"),
    gettext_noop("Select %s to view"),
    gettext_noop("Change history: %s"),
    gettext_noop("Add %(name)s"),
    gettext_noop("Add another %(verbose_name)s"),
    gettext_noop("Delete selected %(verbose_name_plural)s"),
    gettext_noop("By %(filter_title)s"),
    gettext_noop(" By %(filter_title)s "),
    gettext_noop("Are you sure?"),
    gettext_noop("View"),
    gettext_noop("Change"),
    gettext_noop("Add"),
    gettext_noop("Run"),
    gettext_noop("From"),
    gettext_noop("To"),
    # django-unfold's page furniture (no French catalogue upstream)
    gettext_noop("Type to search"),
    gettext_noop("Filters"),
    gettext_noop("Apply Filters"),
    gettext_noop("Reset filters"),
    gettext_noop("Select record"),
    gettext_noop("Select action"),
    gettext_noop("Select action to run"),
    gettext_noop("Select all rows"),
    gettext_noop("Select value"),
    gettext_noop("Select format"),
    gettext_noop("Select currency"),
    gettext_noop("Date from"),
    gettext_noop("Date to"),
    gettext_noop("Date"),
    gettext_noop("Not enough data."),
    gettext_noop("Add new item"),
    gettext_noop("Add row"),
    gettext_noop("This exporter will export the following fields"),
    gettext_noop("Select all"),
    gettext_noop("View traceback"),
    gettext_noop("%(class_name)s %(instance)s"),
    gettext_noop("Welcome back to"),
    gettext_noop("Forgotten your password or username?"),
    gettext_noop("You have been successfully logged out from the administration"),
    gettext_noop("Return to site"),
    gettext_noop("Expand row"),
    gettext_noop("More actions"),
    gettext_noop("All applications"),
    gettext_noop("Search apps and models..."),
    gettext_noop("True"),
    gettext_noop("False"),
    gettext_noop("No data"),
    gettext_noop("No results found"),
    gettext_noop("This page yielded into no results. Create a new item or reset your filters."),
    gettext_noop("Recent searches"),
    gettext_noop("No recent searches"),
    gettext_noop("No results matching your query"),
    gettext_noop("Loading more results..."),
    gettext_noop("Cancel"),
    gettext_noop("Go back"),
    gettext_noop("Previous"),
    gettext_noop("Next"),
    gettext_noop("General"),
    gettext_noop("Light"),
    gettext_noop("Dark"),
    gettext_noop("System"),
    gettext_noop("Record picture"),
    gettext_noop("This item will be deleted."),
    gettext_noop("Click to cancel"),
    gettext_noop("Image preview"),
    gettext_noop("Click to download"),
    gettext_noop("Choose file to upload"),
    gettext_noop("Toggle password visibility"),
    gettext_noop("Dataset not found. No action performed."),
    gettext_noop("After you've created a user, you’ll be able to edit more user options."),
    gettext_noop(
        "Raw passwords are not stored, so there is no way to see this user’s password, but you can change "
        'the password using <a href="{}" class="text-primary-600 dark:text-primary-500">this form</a>.'
    ),
    # the same English word, two meanings on Tarif's own pages
    pgettext_lazy("billing run", "Run"),
    pgettext_lazy("server view", "View"),
    pgettext_lazy("invoice seller", "From"),
)
