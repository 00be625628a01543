# Issue 20: the console's country filter reads the countries in use by a loose index scan.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0011_data20_list_order_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(fields=['livemode', 'country'], name='customer_mode_country_idx'),
        ),
    ]
