from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('deploykit', '0005_beat_tick'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskName',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255, unique=True)),
                ('recorded', models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
