"""Local runners, one module per modality (text*, vision*, audio, generation_*), each a Runner subclass
named by its task type's entry in jarvis.runners.registry; loading.py holds the helpers they share.
The registry imports a runner's module at the first local task of its type, so torch stays unloaded
until then."""
