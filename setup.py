import re

from setuptools import find_packages, setup

# The version lives in apiphant/__init__.py alone; read, not imported (that would need gevent).
VERSION = re.search(r"^__version__ = '([^']+)'", open('apiphant/__init__.py', encoding='utf-8').read(), re.M)[1]

setup(
    name='apiphant',
    version=VERSION,
    description='A product\'s module tree served as a fast JSON API on gevent.',
    long_description=open('README.rst', encoding='utf-8').read(),
    long_description_content_type='text/x-rst',
    license='MIT',
    python_requires='>=3.11',
    packages=find_packages(include=['apiphant', 'apiphant.*']) + ['apiphant.deploy_template', 'apiphant.product_template'],
    # deploy_template/ and product_template/ (at the top of the repository) are installed as
    # apiphant/deploy_template/ and apiphant/product_template/, which apiphant new renders.
    package_dir={'apiphant.deploy_template': 'deploy_template', 'apiphant.product_template': 'product_template'},
    package_data={'apiphant': ['client.js'],
                  'apiphant.deploy_template': ['*.sh', '*/*'],
                  'apiphant.product_template': ['.gitignore', '*.ini', '*.py', '*.rst', '*.txt', '*/*.py', '*/*/*.py',
                                                '*/*/*/*.py']},
    scripts=['bin/apiphant', 'bin/apiphant-background'],
    install_requires=[
        'gevent>=25.4.1',  # earlier pywsgi releases have request smuggling CVEs
        'httptools>=0.6',  # llhttp, the strict HTTP/1.1 parser of the front
        'orjson>=3.9',  # orjson.Fragment
        'requests>=2.28',
        'PyJWT[crypto]>=2.8',  # apiphant.auth: access tokens (HS256), an OIDC issuer's (RS256, ES256)
        'argon2-cffi>=23',  # apiphant.auth: password hashes (argon2id)
        'sqlalchemy>=2',  # apiphant.crud: SQLite and PostgreSQL through one Core
        'swagger-ui-bundle-v2>=5.17,<6',  # GET /docs: Swagger UI 5 (reads OpenAPI 3.1) served offline
    ],
    extras_require={
        'postgresql': ['psycopg[binary]>=3.1.14'],  # 3.1.5 to 3.1.13 block gevent while they wait
        'test': ['pytest>=8', 'docutils', 'psycopg[binary]>=3.1.14', 'prometheus-client', 'ruff',
                 'openapi-spec-validator>=0.7', 'schemathesis>=4.0,<5', 'selenium>=4.11'],
    },
    entry_points={'pytest11': ['apiphant = apiphant.pytest_plugin']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Framework :: Pytest',
    ],
)
